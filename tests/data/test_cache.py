import multiprocessing as mp
import os

import numpy as np
import pytest

from isp.data.cache import DecodeCache, MissingDataError
from isp.raw import noise_vectors, pack, read


def test_cache_holds_what_isp_raw_decodes(tmp_path, raw_writer):
    path = raw_writer(tmp_path / "a.dng", iso=800, exposure=0.02, seed=0)
    cache = DecodeCache(tmp_path / "cache")
    item = cache.load(path)
    frame = read(path)
    np.testing.assert_array_equal(item.planes, pack(frame)[0])
    row, col = noise_vectors(frame)
    np.testing.assert_array_equal(item.row, row)
    np.testing.assert_array_equal(item.col, col)
    assert isinstance(item.planes, np.memmap) and item.planes.dtype == np.float32
    assert (item.metadata.iso, item.metadata.exposure_time) == (800, pytest.approx(0.02))
    np.testing.assert_allclose(item.metadata.cam_to_srgb, frame.metadata.cam_to_srgb)
    cached = cache.load_frame(path)
    np.testing.assert_array_equal(cached.sensor, frame.sensor)
    np.testing.assert_array_equal(cached.optical_black.left, frame.optical_black.left)
    assert cached.active_area == frame.active_area and cached.cfa == frame.cfa
    assert cache.decodes == 2  # planes first, then the full frame once more


def test_each_file_is_decoded_once_and_then_never_needs_the_source(tmp_path, raw_writer):
    path = raw_writer(tmp_path / "a.dng", iso=800, exposure=0.02, seed=0)
    cache = DecodeCache(tmp_path / "cache")
    key = cache.key(path)
    cache.ensure(path, frame=True)
    first = np.array(cache.load(path).planes)
    assert cache.decodes == 1
    os.remove(path)  # the source is gone: the cache still answers by key
    np.testing.assert_array_equal(cache.load(path, key).planes, first)
    assert cache.load_frame(path, key).sensor.shape == (44, 64)
    assert cache.decodes == 1
    with pytest.raises(MissingDataError, match="a.dng"):
        cache.key(path)


def test_changed_file_gets_a_new_key(tmp_path, raw_writer):
    path = raw_writer(tmp_path / "a.dng", iso=800, exposure=0.02, seed=0)
    key = DecodeCache.key(path)
    os.utime(path, ns=(1, 1))
    assert DecodeCache.key(path) != key


def test_parallel_processes_write_one_complete_entry(tmp_path, raw_writer):
    path = str(raw_writer(tmp_path / "a.dng", iso=800, exposure=0.02, seed=0))
    root = str(tmp_path / "cache")
    with mp.get_context("spawn").Pool(2) as pool:
        keys = pool.map(DecodeCache(root).ensure, [path] * 4)
    assert len(set(keys)) == 1
    assert sorted(os.listdir(root)) == [keys[0]]  # no temporary folders left behind
    np.testing.assert_array_equal(DecodeCache(root).load(path).planes, pack(read(path))[0])
