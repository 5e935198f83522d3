"""crl.VecEnv (envs/vecenv.c) equals n single envs bit for bit, auto-reset
included, on one thread and two; bad input raises."""

import numpy as np
import pytest

import crl


@pytest.mark.parametrize("task,steps", [("pendulum", 230), ("ant", 150)])
@pytest.mark.parametrize("threads", [1, 2])
def test_vec_equals_single_envs(task, steps, threads):
    n, seed = 3, 9
    venv = crl.VecEnv(task, n, seed=seed, threads=threads)
    assert venv.threads == threads and venv.num_envs == n
    singles = [crl.make(task) for _ in range(n)]
    episode = [0] * n
    obs, info = venv.reset()
    assert info["seed"] == seed and obs.shape == (n, venv.single_observation_space.shape[0])
    for i, e in enumerate(singles):
        o, _ = e.reset(seed=crl.episode_seed(seed, i, 0))
        episode[i] = 1
        assert o.tobytes() == obs[i].tobytes()
    rng = np.random.default_rng(1)
    ends = 0
    for t in range(steps):
        act = rng.uniform(-1.2, 1.2, size=venv.action_space.shape).astype(np.float32)
        obs, rew, term, trunc, info = venv.step(act)
        assert rew.dtype == np.float32 and term.dtype == np.bool_
        for i, e in enumerate(singles):
            o, r, te, tr, inf = e.step(act[i])
            assert o.tobytes() == info["final_obs"][i].tobytes(), (t, i)
            assert np.float32(r) == rew[i], (t, i)
            assert (te, tr, inf["success"]) == (term[i], trunc[i], info["success"][i])
            if te or tr:
                ends += 1
                o, _ = e.reset(seed=crl.episode_seed(seed, i, episode[i]))
                episode[i] += 1
            assert o.tobytes() == obs[i].tobytes(), (t, i)
    assert ends >= 1, "no auto-reset covered"
    assert list(venv.episodes()) == episode
    venv.close()


def test_one_env_walks_the_env_chain():
    """A VecEnv of one env and an Env with the same seed see the same episodes
    (the documented rule: the Env's seedless resets are env 0's auto-resets)."""
    venv = crl.VecEnv("pendulum", 1, seed=77)
    env = crl.make("pendulum", seed=77)
    vo, _ = venv.reset()
    eo, _ = env.reset()
    assert vo[0].tobytes() == eo.tobytes()
    for t in range(420):
        a = np.full((1, 1), np.sin(0.05 * t), np.float32)
        vo, vr, vte, vtr, _ = venv.step(a)
        eo, er, ete, etr, _ = env.step(a[0])
        if ete or etr:
            eo, _ = env.reset()
        assert vo[0].tobytes() == eo.tobytes(), t
    assert venv.episodes()[0] == 3


def test_threads_do_not_change_results():
    out = []
    for threads in (1, 2):
        v = crl.VecEnv("halfcheetah", 4, seed=5, threads=threads)
        v.reset()
        rng = np.random.default_rng(0)
        acc = []
        for _ in range(50):
            o, r, *_ = v.step(rng.uniform(-1, 1, v.action_space.shape))
            acc.append(o.tobytes() + r.tobytes())
        out.append(b"".join(acc))
    assert out[0] == out[1]


def test_bad_input():
    with pytest.raises(ValueError, match="n must be"):
        crl.VecEnv("pendulum", 0)
    with pytest.raises(ValueError, match="threads must be 1 or 2"):
        crl.VecEnv("pendulum", 2, threads=4)
    with pytest.raises(ValueError, match="unknown task"):
        crl.VecEnv("pendulm", 2)
    v = crl.VecEnv("pendulum", 2)
    with pytest.raises(ValueError, match="reset"):
        v.step(np.zeros((2, 1)))
    v.reset()
    with pytest.raises(ValueError, match=r"shape \(1,\).*\(2, 1\)"):
        v.step(np.zeros(1))
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        v.step([[0, 0], [0, 0]])
    with pytest.raises(ValueError, match=r"envs \[1\].*NaN or infinite"):
        v.step([[0.0], [np.nan]])
    v.step([[0.0], [1.0]])  # lists of the right shape are fine
    v.close()
    with pytest.raises(ValueError, match="closed"):
        v.reset()
    with pytest.raises(ValueError, match="closed"):
        v.step(np.zeros((2, 1)))
