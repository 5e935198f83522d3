"""crl.Policy against crl_policy_act / crl_policy_act_batch (crl_pyref,
tests/pyref.c) bit for bit, on a policy trained and exported by the CLI."""

import numpy as np
import pytest

import crl
from conftest import run_tool


@pytest.fixture(scope="module")
def observations():
    """Real observations of the pendulum (24 rows)."""
    env = crl.make("pendulum", seed=2)
    rows = [env.reset()[0]]
    rng = np.random.default_rng(0)
    while len(rows) < 24:
        rows.append(env.step(rng.uniform(-1, 1, 1))[0])
    return np.stack(rows).astype(np.float32)


def ref_actions(pyref, tmp_path, policy_file, obs, B, mode, seed):
    o = tmp_path / ("obs_%d_%d.f32" % (B, mode))
    a = tmp_path / ("act_%d_%d.f32" % (B, mode))
    obs.tofile(o)
    run_tool(pyref, "policy", policy_file, 0, B, mode, seed, o, a)
    return np.fromfile(a, np.float32).reshape(len(obs), -1)


def test_properties(policy_file):
    with crl.Policy.load(policy_file) as p:
        assert (p.obs_dim, p.act_dim, p.num_tasks) == (3, 1, 1)
        assert p.task_names == ["pendulum"]
        assert p.method == "sac"
        assert p.task_max_steps == [200]
        assert p.crl_version
    assert p.closed


def test_single_rows_equal_crl_policy_act(pyref, tmp_path, policy_file, observations):
    ref = ref_actions(pyref, tmp_path, policy_file, observations, 1, 0, 0)
    p = crl.Policy.load(policy_file)
    for i, o in enumerate(observations):
        a = p.act(o)
        assert a.dtype == np.float32 and a.shape == (1,)
        assert a.tobytes() == ref[i].tobytes(), i
        # by name, and from float64 / list input: the same float32 call
        assert p.act(o.astype(np.float64), task="pendulum").tobytes() == ref[i].tobytes()
        assert p.act(o.tolist(), task=-1).tobytes() == ref[i].tobytes()
    assert np.all(np.abs(ref) <= 1)


@pytest.mark.parametrize("B", [8, 24])
def test_batches_equal_crl_policy_act_batch(pyref, tmp_path, policy_file, observations, B):
    ref = ref_actions(pyref, tmp_path, policy_file, observations, B, 0, 0)
    p = crl.Policy.load(policy_file)
    got = np.concatenate([p.act(observations[r:r + B]) for r in range(0, len(observations), B)])
    assert got.shape == (24, 1) and got.dtype == np.float32
    assert got.tobytes() == ref.tobytes()


def test_stochastic_equal_c_with_one_rng(pyref, tmp_path, policy_file, observations):
    ref = ref_actions(pyref, tmp_path, policy_file, observations, 1, 1, 5)
    det = ref_actions(pyref, tmp_path, policy_file, observations, 1, 0, 5)
    p = crl.Policy.load(policy_file, seed=5)
    got = np.stack([p.act(o, deterministic=False) for o in observations])
    assert got.tobytes() == ref.tobytes()
    assert not np.array_equal(got, det)  # the noise did something
    p.seed(5)  # reseeding replays the draws
    assert p.act(observations[0], deterministic=False).tobytes() == ref[0].tobytes()


def test_bad_input(policy_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        crl.Policy.load(tmp_path / "missing.crlp")
    with pytest.raises(IsADirectoryError):
        crl.Policy.load(tmp_path)
    data = open(policy_file, "rb").read()
    for name, blob in [("trunc.crlp", data[: len(data) // 2]), ("junk.crlp", b"not a policy" * 9),
                       ("empty.crlp", b""), ("flip.crlp", data[:-9] + bytes([data[-9] ^ 1]) + data[-8:])]:
        f = tmp_path / name
        f.write_bytes(blob)
        with pytest.raises(crl.CrlError) as ei:
            crl.Policy.load(f)
        msg = str(ei.value)
        assert msg.startswith("crl.Policy.load: ") and "\n" not in msg, msg
    p = crl.Policy.load(policy_file)
    o = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        p.act(np.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 3\)"):
        p.act(np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="real numbers"):
        p.act(["a", "b", "c"])
    with pytest.raises(ValueError, match="no task 'push'.*pendulum"):
        p.act(o, task="push")
    with pytest.raises(ValueError, match="out of range"):
        p.act(o, task=1)
    with pytest.raises(TypeError, match="index or a task name"):
        p.act(o, task=1.0)
    with pytest.raises(ValueError, match="seed"):
        p.seed(-3)
    assert p.act(np.zeros((0, 3))).shape == (0, 1)
    p.close()
    with pytest.raises(ValueError, match="closed"):
        p.act(o)
