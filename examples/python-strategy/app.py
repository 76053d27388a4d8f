"""A linear ramp with a manual gate: a Hivemind strategy in Python.

Traffic moves to the new version in equal steps (`--param steps=4`: 25%, 50%, 75%,
100%), `--param interval=5` seconds apart. With `--param gate=50` the ramp holds at 50%
until someone runs `hivemind deployment promote`. Then the old version's replicas are
drained and stopped. A rollback puts the previous release back and stops the new one.

Every call to `step` is a fresh instance: what must survive between steps is saved with
`state.set` (here, how many ramp steps were taken), and a step may be re-run after a
crash, so each one is safe to repeat.
"""

import wit_world
from componentize_py_types import Err
from wit_world import Phase, StepOutcome_AwaitApproval, StepOutcome_Continue, StepOutcome_Done, StepOutcome_Failed
from wit_world.imports import containers, context, health, progress, routing, state
from wit_world.imports.routing import DrainState_Draining, Weight
from wit_world.imports.types import PluginInfo


def param(deployment, key, default):
    return dict(deployment.params).get(key, default)


def saved(key, default):
    value = state.get(key)
    return int(value.decode()) if value is not None else default


def save(key, value):
    state.set(key, str(value).encode())


def start(version, replicas):
    """Scales `version` to `replicas`; True once every one is healthy."""
    started = containers.scale(version, replicas)
    healthy = sum(1 for r in started if health.probe(r.id).healthy)
    if healthy < len(started):
        progress.report(5, f"starting {version}: {healthy}/{len(started)} healthy")
    return healthy == len(started)


def retire(keep):
    """Drains every replica not of version `keep`, then stops them; True once none is left."""
    old = [r.id for r in containers.list() if r.version != keep]
    if not old:
        return True
    if not saved("draining", 0):
        routing.drain(old, 10_000)
        save("draining", 1)
        return False
    if any(isinstance(routing.drain_status(i), DrainState_Draining) for i in old):
        return False
    containers.stop(old, 5_000)
    return True


class WitWorld(wit_world.WitWorld):
    def info(self):
        return PluginInfo(
            name="python-ramp",
            version="0.1.0",
            description="Move traffic in equal steps, with an optional manual gate (Python)",
        )

    def validate(self, deployment):
        for key in ("steps", "interval", "gate"):
            value = param(deployment, key, "1")
            if not value.isdigit():
                raise Err(f"{key} must be a whole number; got `{value}`")
        if not 1 <= int(param(deployment, "steps", "4")) <= 100:
            raise Err("steps must be from 1 to 100")

    def step(self, deployment, cx):
        target = deployment.target.version
        if cx.phase == Phase.ROLLBACK:
            previous = deployment.previous
            if previous is None:
                containers.stop([r.id for r in containers.list()], 5_000)
                return StepOutcome_Done()
            if not start(previous.version, previous.replicas):
                return StepOutcome_Continue(250)
            routing.set_split([Weight(version=previous.version, weight=100)])
            return StepOutcome_Done() if retire(previous.version) else StepOutcome_Continue(250)

        if not start(target, deployment.target.replicas):
            # A release that never gets healthy fails the deployment, which rolls back.
            if cx.elapsed_ms > deployment.health.ready_timeout_ms:
                return StepOutcome_Failed(f"{target} is not healthy after {deployment.health.ready_timeout_ms // 1000} s")
            return StepOutcome_Continue(250)
        if deployment.previous is None:
            routing.set_split([Weight(version=target, weight=100)])
            return StepOutcome_Done()

        stable = deployment.previous.version
        steps = int(param(deployment, "steps", "4"))
        shares = [round(100 * (i + 1) / steps) for i in range(steps)]
        taken = saved("taken", 0)
        if taken < len(shares):
            share = shares[taken]
            gate = param(deployment, "gate", None)
            if gate is not None and share > int(gate) and context.promotions() == 0:
                held = shares[taken - 1] if taken else 0
                return StepOutcome_AwaitApproval(f"the ramp holds {target} at {held}%: promote to go on")
            split = [Weight(version=target, weight=share)]
            if share < 100:
                split.insert(0, Weight(version=stable, weight=100 - share))
            routing.set_split(split)
            save("taken", taken + 1)
            progress.report(share * 9 // 10, f"{target} has {share}% of the traffic")
            interval_ms = int(param(deployment, "interval", "5")) * 1000
            return StepOutcome_Continue(interval_ms if share < 100 else 0)

        if not retire(target):
            return StepOutcome_Continue(200)
        progress.report(100, f"{target} serves all traffic")
        return StepOutcome_Done()
