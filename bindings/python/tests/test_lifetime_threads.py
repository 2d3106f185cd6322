"""Lifetime (objects dropped in any order, views and arrays outliving their handle, close(), garbage
cycles) and threads (8 Python threads running one object's forward at once)."""

import gc
import random
import threading
import time
import weakref

import numpy as np
import pytest

import attn


def small_models():
    return [
        attn.RNN(3, 4, num_layers=2, bidirectional=True, seed=1),
        attn.MultiheadAttention(8, 2, seed=2),
        attn.MultiheadAttention(8, 2, kind="nystrom", num_landmarks=2, seed=2),
        attn.MemoryRNN(3, 2, 6, 5, 4, seed=3),
        attn.Perceiver(depth=1, num_freq_bands=2, max_freq=4.0, input_channels=3, input_axis=1, num_latents=3,
                       latent_dim=8, cross_dim_head=4, latent_heads=2, latent_dim_head=4, seed=4),
    ]


def run_model(m, rng):
    if isinstance(m, attn.MultiheadAttention):
        return m(rng.standard_normal((2, 4, 8)))
    return m(rng.standard_normal((2, 4, 3)))[0] if isinstance(m, attn.RNN) else m(rng.standard_normal((2, 4, 3)))


def test_views_and_arrays_outlive_the_model():
    rng = np.random.default_rng(40)
    m = attn.RNN(3, 4, seed=9)
    p = m.params
    y = m(rng.standard_normal((2, 5, 3)))[0]
    w = p["weight_ih_l0"]
    ref = weakref.ref(m)
    del m
    gc.collect()
    assert ref() is not None  # the mapping keeps the model alive
    np.testing.assert_array_equal(p["weight_ih_l0"], w)
    p["bias_hh_l0"] = np.ones(16)
    assert len(p) == 4
    del p
    gc.collect()
    assert ref() is None  # and only the mapping did
    assert y.sum() == y.sum() and w.shape == (16, 3)  # arrays are numpy's own


def test_close():
    x = np.zeros((1, 2, 3), np.float32)
    m = attn.RNN(3, 4)
    p = m.params
    with m:
        m(x)
    assert m.closed and "closed" in repr(m) and "closed" in repr(p)
    for call in (lambda: m(x), lambda: p["weight_ih_l0"], lambda: len(p), lambda: m.cost(1, 2),
                 lambda: p.init(1), lambda: m.recurrent_matrix()):
        with pytest.raises(attn.InvalidArgument, match="closed"):
            call()
    m.close()  # again: nothing
    ws = attn.Workspace()
    ws.close()
    with pytest.raises(attn.InvalidArgument, match="workspace is closed"):
        attn.RNN(3, 4)(x, workspace=ws)
    assert ws.size == 0


def test_drop_in_any_order_under_gc():
    rng = np.random.default_rng(41)
    order = random.Random(42)
    for i in range(60):
        objs = small_models()
        objs += [m.params for m in objs]
        objs += [run_model(m, rng) for m in objs[:5]]
        ws = attn.Workspace()
        objs.append(ws)
        attn.RNN(3, 4)(rng.standard_normal((1, 2, 3)), workspace=ws)
        cyc = attn.MultiheadAttention(4, 1)
        cyc.me = cyc  # a reference cycle: freed by the collector, once
        objs.append(cyc)
        order.shuffle(objs)
        while objs:
            objs.pop()
            gc.collect(0)  # the young generation: cheap, and where these objects are
        if i % 10 == 0:
            gc.collect()
    gc.collect()


def test_close_waits_for_a_running_forward():
    """close() from another thread waits for the forward calls using the handle."""
    m = attn.RNN(64, 256, num_layers=2, cell="lstm", seed=1)
    x = np.random.default_rng(43).standard_normal((8, 200, 64)).astype(np.float32)
    ref = m(x)[0]
    started, out = threading.Event(), {}

    def work():
        started.set()
        try:
            out["y"] = m(x)[0]
        except attn.InvalidArgument as e:  # close() came first
            out["error"] = e

    t = threading.Thread(target=work)
    t.start()
    started.wait()
    time.sleep(0.05)  # the forward call (about 0.4 s) is running by now
    m.close()
    t.join()
    if "error" in out:
        assert "closed" in str(out["error"])
    else:
        np.testing.assert_array_equal(out["y"], ref)
    assert m.closed


def test_thread_workspace_is_per_thread_and_released():
    seen = {}

    def work():
        seen["before"] = attn.thread_workspace_size()
        attn.RNN(3, 4)(np.zeros((1, 2, 3), np.float32))
        seen["after"] = attn.thread_workspace_size()

    attn.release_thread_workspace()
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen["before"] == 0 and seen["after"] > 0
    assert attn.thread_workspace_size() == 0  # the other thread's workspace was not this one's
    attn.RNN(3, 4)(np.zeros((1, 2, 3), np.float32))
    assert attn.thread_workspace_size() == seen["after"]
    attn.release_thread_workspace()
    assert attn.thread_workspace_size() == 0


# ---- threads -----------------------------------------------------------------------------------

THREADS = 8


def hammer(fn, reps=4):
    """Runs fn() in 8 threads released together, reps times each; returns every result."""
    barrier = threading.Barrier(THREADS)
    results, failures = [[] for _ in range(THREADS)], []

    def work(i):
        try:
            barrier.wait()
            for _ in range(reps):
                results[i].append(fn())
        except BaseException as e:  # noqa: reported below
            failures.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return [r for rs in results for r in rs]


def test_eight_threads_one_object():
    rng = np.random.default_rng(44)
    rnn = attn.RNN(16, 32, num_layers=2, bidirectional=True, seed=3)
    x = rng.standard_normal((4, 30, 16)).astype(np.float32)
    lengths = [30, 12, 1, 25]
    mha = attn.MultiheadAttention(64, 4, seed=4)
    q = rng.standard_normal((2, 128, 64)).astype(np.float32)
    mask = np.zeros((2, 128), bool)
    mask[1, 100:] = True
    nys = attn.MultiheadAttention(64, 4, kind="nystrom", num_landmarks=8, seed=5)
    mem = attn.MemoryRNN(4, 3, 16, 20, 8, num_heads=2, seed=6)
    xm = rng.standard_normal((3, 10, 4)).astype(np.float32)
    per = attn.Perceiver(depth=2, num_freq_bands=4, max_freq=8.0, input_channels=3, input_axis=2, num_latents=8,
                         latent_dim=32, cross_dim_head=16, latent_heads=2, latent_dim_head=16, seed=7)
    img = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    cases = {
        "rnn": lambda: rnn(x, lengths=lengths),
        "mha": lambda: mha(q, key_padding_mask=mask),
        "mha matrix": lambda: mha.attention_matrix(q),
        "nystrom": lambda: nys(q),
        "memory": lambda: mem.forward_all(xm),
        "perceiver": lambda: per(img),
    }
    for name, fn in cases.items():
        ref = fn()
        for got in hammer(fn):
            for a, b in zip(_flat(got), _flat(ref)):
                np.testing.assert_array_equal(a, b, err_msg=name)


def _flat(r):
    if isinstance(r, np.ndarray):
        return [r]
    out = []
    for item in r:
        out += [] if item is None else _flat(item)
    return out


def test_threads_sharing_one_workspace_and_a_writer():
    """Threads passing the same Workspace take turns on it; a thread setting parameters (to the values
    they already have) waits for the forward calls and they for it."""
    rng = np.random.default_rng(45)
    m = attn.RNN(8, 16, cell="gru", seed=2)
    x = rng.standard_normal((4, 20, 8)).astype(np.float32)
    ref = m(x)[0]
    ws = attn.Workspace()
    state = m.state_dict()
    stop = threading.Event()
    writes = []

    def writer():
        while not stop.is_set():
            m.load_state_dict(state)
            writes.append(1)
            time.sleep(0.002)  # a writer that never pauses would hold the readers off (writers go first)

    w = threading.Thread(target=writer)
    w.start()
    try:
        for got in hammer(lambda: m(x, workspace=ws)[0], reps=6):
            np.testing.assert_array_equal(got, ref)
    finally:
        stop.set()
        w.join()
    assert ws.size == m.cost(4, 20).workspace_bytes and writes


def test_copies_and_pickles_are_independent_models(tmp_path):
    """copy, deepcopy and pickle build a new handle with the same options and values (never a second
    owner of the same one); objects that cannot be rebuilt refuse to be copied."""
    import copy
    import pickle
    rng = np.random.default_rng(46)
    for m in small_models() + [attn.RNN(3, 8, recurrence="low_rank", rank=2, seed=1, cell="rnn_relu"),
                               attn.RNN(3, 8, recurrence="kronecker", factor_sizes=[2, 2, 2], seed=2)]:
        for c in (copy.copy(m), copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
            assert type(c) is type(m) and c._ptr != m._ptr and repr(c) == repr(m)
            state = rng.bit_generator.state
            a = run_model(m, rng)
            rng.bit_generator.state = state
            np.testing.assert_array_equal(run_model(c, rng), a)
            del c
            gc.collect()
        run_model(m, rng)  # the original is untouched
    attn.RNN(3, 4).params.save(tmp_path / "p.safetensors")
    for obj in (attn.Workspace(), attn.open_params(tmp_path / "p.safetensors")):
        with pytest.raises(TypeError, match="cannot be copied"):
            copy.copy(obj)
