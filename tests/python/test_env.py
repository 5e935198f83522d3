"""crl.make / Env against the C API (crl_pyref, tests/pyref.c) bit for bit,
the seed rule, spaces, scenarios, user MJCF, rendering and bad input."""

import math
import re

import numpy as np
import pytest

import crl
from conftest import run_tool

SLIDER_XML = """<mujoco model="slider">
  <option timestep="0.01"/>
  <worldbody>
    <body name="cart" pos="0 0 0.1">
      <joint name="x" type="slide" axis="1 0 0" damping="0.5"/>
      <geom type="box" size="0.1 0.1 0.05" mass="1"/>
      <site name="tip" pos="0.1 0 0"/>
    </body>
  </worldbody>
  <actuator><motor joint="x" ctrllimited="true" ctrlrange="-1 1" gear="5"/></actuator>
</mujoco>
"""


@pytest.fixture()
def slider(tmp_path):
    p = tmp_path / "slider.xml"
    p.write_text(SLIDER_XML)
    return str(p)


def reference(pyref, tmp_path, task, seed, actions, od):
    """crl_pyref's episode stream, parsed: (reset obs list, step rows)."""
    a = tmp_path / "act.f32"
    out = tmp_path / "ref.f32"
    np.ascontiguousarray(actions, np.float32).tofile(a)
    run_tool(pyref, "env", task, seed, a, out)
    x = np.fromfile(out, np.float32)
    pos = od
    resets, steps = [x[:od]], []
    for _ in range(len(actions)):
        obs, (rew, term, trunc, succ) = x[pos:pos + od], x[pos + od:pos + od + 4]
        pos += od + 4
        steps.append((obs, rew, bool(term), bool(trunc), bool(succ)))
        if term or trunc:
            resets.append(x[pos:pos + od])
            pos += od
    assert pos == len(x)
    return resets, steps


# pendulum: truncation at 200 then a seedless reset; ant: terminals under
# random actions; halfcheetah-moon: a modified task; push: manipulation with
# success; the slider: a user MJCF.
CASES = [("pendulum", 11, 230), ("ant", 2, 160), ("halfcheetah-moon", 5, 60), ("push", 7, 60)]


@pytest.mark.parametrize("task,seed,steps", CASES)
def test_reset_step_equal_c_api(pyref, tmp_path, task, seed, steps):
    env = crl.make(task, seed=seed)
    od, ad = env.observation_space.shape[0], env.action_space.shape[0]
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.3, 1.3, size=(steps, ad)).astype(np.float32)
    resets, ref = reference(pyref, tmp_path, task, seed, actions, od)
    obs, info = env.reset()
    assert info["seed"] == seed
    assert obs.dtype == np.float32 and obs.shape == (od,)
    assert obs.tobytes() == resets[0].tobytes()
    k = 1
    ends = 0
    for t in range(steps):
        # float64 actions: converted to float32 as the C caller's were
        obs, rew, term, trunc, info = env.step(actions[t].astype(np.float64))
        r_obs, r_rew, r_term, r_trunc, r_succ = ref[t]
        assert obs.tobytes() == r_obs.tobytes(), "step %d obs" % t
        assert np.float32(rew) == r_rew and float(np.float32(rew)) == rew, "step %d reward" % t
        assert (term, trunc, info["success"]) == (r_term, r_trunc, r_succ), "step %d" % t
        if term or trunc:
            ends += 1
            obs, info = env.reset()  # the next seed of the chain, as crl_pyref does
            assert info["seed"] == crl.episode_seed(seed, 0, k)
            assert obs.tobytes() == resets[k].tobytes(), "reset %d" % k
            k += 1
    assert k == len(resets)
    if task in ("pendulum", "ant"):
        assert ends >= 1, "no episode end covered"
    env.close()


def test_user_mjcf_equal_c_api(pyref, tmp_path, slider):
    env = crl.make(slider, seed=4)
    assert crl.make(tmp_path / "slider.xml").name == env.name  # a pathlib.Path too
    assert env.action_space.shape == (1,) and env.observation_space.shape == (2,)
    actions = np.linspace(-1, 1, 40, dtype=np.float32).reshape(40, 1)
    resets, ref = reference(pyref, tmp_path, slider, 4, actions, 2)
    obs, _ = env.reset()
    assert obs.tobytes() == resets[0].tobytes()
    for t in range(40):
        obs, rew, term, trunc, _ = env.step(actions[t])
        assert obs.tobytes() == ref[t][0].tobytes()
        assert np.float32(rew) == ref[t][1]


def test_user_mjcf_options(slider):
    # reach: reward = -|tip - target|, the tip 0.1 m ahead of the cart's x at z 0.1
    env = crl.make(xml=slider, reward="reach", site="tip", target=(1.0, 0.0, 0.0), max_steps=25)
    assert env.max_episode_steps == 25
    assert env.modifiers != {}
    env.reset(seed=1)
    for t in range(25):
        obs, rew, term, trunc, _ = env.step([0.7])
        x = float(obs[0])
        assert rew == pytest.approx(-math.hypot(x + 0.1 - 1.0, 0.1), abs=2e-6)
        assert trunc == (t == 24) and not term
    with pytest.raises(crl.CrlError, match="nosuch"):
        crl.make(slider, reward="reach", site="nosuch", target=(1, 0, 0))


def test_seed_rule():
    a = crl.make("halfcheetah", seed=123)
    b = crl.make("halfcheetah")
    oa, ia = a.reset()
    ob, ib = b.reset(seed=123)
    assert oa.tobytes() == ob.tobytes() and ia["seed"] == ib["seed"] == 123
    # seedless resets walk the chain of the last seed, identically
    for k in range(1, 4):
        oa, ia = a.reset()
        ob, ib = b.reset()
        assert ia["seed"] == ib["seed"] == crl.episode_seed(123, 0, k)
        assert oa.tobytes() == ob.tobytes()
    assert len({crl.episode_seed(123, 0, k) for k in range(6)}) == 6
    c = crl.make("halfcheetah")  # no seed: base 0
    assert c.reset()[1]["seed"] == 0
    with pytest.raises(ValueError, match="2\\*\\*64"):
        a.reset(seed=-1)
    with pytest.raises(TypeError):
        a.reset(seed=1.5)


def test_spaces_and_tasks(crl_bin):
    listed = crl.tasks()
    names = [t.name for t in listed]
    cli = run_tool(crl_bin, "tasks")
    for n in names:  # the CLI lists the same registry
        assert re.search(r"(^|\s)%s(\s|$)" % re.escape(n), cli, re.M), n
    assert len(set(names)) == len(names) and "push" in names and "halfcheetah-moon" in names
    env = crl.make("push")
    t = listed[names.index("push")]
    assert env.observation_space.shape == (t.obs_dim,)
    assert env.action_space.shape == (t.act_dim,)
    assert env.action_space.dtype == np.float32
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    assert np.all(np.isinf(env.observation_space.high))
    env.action_space.seed(3)
    s = env.action_space.sample()
    assert s.dtype == np.float32 and env.action_space.contains(s)


def test_scenario_in_order(crl_bin):
    sc = crl.scenario("cw10")
    tasks = list(sc)
    assert len(tasks) == len(sc) == 10
    assert [t.position for t in tasks] == list(range(10))
    out = run_tool(crl_bin, "scenarios")
    line = [l for l in out.splitlines() if re.match(r"\s*cw10\b", l)]
    assert line, out
    # `crl scenarios` prints the task list in order
    pos = 0
    for t in tasks:
        i = out.find(t.name, pos)
        assert i >= 0, t.name
        pos = i + len(t.name)
    env = tasks[3].make(seed=1)
    assert env.name == tasks[3].name
    assert crl.make(tasks[3]).name == tasks[3].name
    # a locomotion scenario's tasks carry their modifiers (docs/tasks-locomotion.md)
    loco = crl.scenario("halfcheetah-forgetting")
    moon = [t for t in loco if t.name == "halfcheetah-moon"][0]
    assert moon.modifiers["gravity"] == pytest.approx(0.15)
    assert tasks[0].modifiers == {}
    with pytest.raises(ValueError, match="unknown scenario 'cw11'.*cw10"):
        crl.scenario("cw11")


def test_render():
    env = crl.make("push", render_size=(64, 48))
    env.reset(seed=1)
    try:
        img = env.render()
    except crl.CrlError as exc:
        if "OSMesa" in str(exc):
            pytest.skip(str(exc))
        raise
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    assert img.std() > 5  # a scene, not a blank frame
    img2 = env.render()
    assert np.array_equal(img, img2)  # rendering does not move the state
    env.close()


def test_context_manager_and_close():
    with crl.make("pendulum") as env:
        env.reset()
    assert env.closed
    for call in (lambda: env.reset(), lambda: env.step([0.0]), lambda: env.render()):
        with pytest.raises(ValueError, match="closed"):
            call()
    env.close()  # idempotent


def test_bad_input(tmp_path):
    env = crl.make("pendulum", seed=1)
    with pytest.raises(ValueError, match="reset"):
        env.step([0.0])  # before reset
    env.reset()
    with pytest.raises(ValueError, match=r"shape \(2,\).*\(1,\)"):
        env.step([0.0, 0.0])
    with pytest.raises(ValueError, match=r"shape \(\)"):
        env.step(0.5)
    with pytest.raises(ValueError, match=r"shape \(1, 1\)"):
        env.step(np.zeros((1, 1)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        env.step([float("nan")])
    with pytest.raises(ValueError, match="NaN or infinite"):
        env.step(np.array([np.inf]))
    with pytest.raises(ValueError, match="real numbers"):
        env.step(["a"])
    env.step(np.array([3e38], np.float32))  # huge but finite: clipped as in C
    # an episode that ended needs a reset
    for _ in range(300):
        *_, term, trunc, _ = env.step([0.0])
        if term or trunc:
            break
    with pytest.raises(ValueError, match="reset"):
        env.step([0.0])

    with pytest.raises(ValueError, match="unknown task 'pusj'.*did you mean push"):
        crl.make("pusj")
    with pytest.raises(TypeError, match="task name"):
        crl.make(3)
    with pytest.raises(TypeError, match="only to an MJCF"):
        crl.make("push", gravity=0.5)
    with pytest.raises(FileNotFoundError, match="no such MJCF file"):
        crl.make(str(tmp_path / "missing.xml"))
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body>")
    with pytest.raises(crl.CrlError) as ei:
        crl.make(str(bad))
    assert "\n" not in str(ei.value).strip()
    with pytest.raises(TypeError, match="unknown option"):
        crl.make(str(bad), rewrd="reach")
    with pytest.raises(ValueError, match="render_size"):
        crl.make("push", render_size=(1, 1))


def test_gym_register_without_gymnasium():
    try:
        import gymnasium  # noqa: F401

        pytest.skip("gymnasium is installed (test_gym_register covers it)")
    except ImportError:
        pass
    with pytest.raises(ImportError, match="needs the gymnasium package"):
        crl.gym.register()


def test_gym_register():
    gymnasium = pytest.importorskip("gymnasium")
    ids = crl.gym.register()
    assert "crl/pendulum-v0" in ids and len(ids) == len(crl.tasks())
    genv = gymnasium.make("crl/pendulum-v0")
    obs, _ = genv.reset(seed=3)
    ref, _ = crl.make("pendulum").reset(seed=3)
    assert obs.tobytes() == ref.tobytes()
    obs, rew, term, trunc, info = genv.step(np.zeros(1, np.float32))
    assert obs.shape == (3,) and "success" in info
    genv.close()


def test_save_png(tmp_path):
    """save_png writes a PNG of the given size (read back through crl's reader)
    and refuses a non-RGB array with one clear error, leaving no file."""
    rgb = np.zeros((5, 7, 3), dtype=np.uint8)
    rgb[2, 3] = (255, 10, 20)
    path = tmp_path / "x.png"
    crl.save_png(str(path), rgb)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 7 and int.from_bytes(data[20:24], "big") == 5
    bad = tmp_path / "bad.png"
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        crl.save_png(str(bad), np.zeros((5, 7), dtype=np.uint8))
    assert not bad.exists()
