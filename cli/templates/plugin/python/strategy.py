"""{{name}}: a Hivemind deployment strategy in Python.

It starts the new release beside the old one, then moves the traffic to it in equal
steps (`--param steps=4`: 25%, 50%, 75%, 100%) `--param interval=10` seconds apart, and
drains and stops the old release. A rollback puts the previous release back.

Every call to `step` is a fresh instance: what must survive between calls is saved with
`state.set`, and a call may be repeated after a crash, so each one is safe to re-run.
"""

import wit_world
from componentize_py_types import Err
from wit_world import Phase, StepOutcome_Continue, StepOutcome_Done, StepOutcome_Failed
from wit_world.imports import containers, health, progress, routing, state
from wit_world.imports.routing import DrainState_Draining, Weight
from wit_world.imports.types import PluginInfo

from plan import parse_whole, share


def param(deployment, key, default):
    return dict(deployment.params).get(key, default)


def saved(key, default=0):
    value = state.get(key)
    return int(value.decode()) if value is not None else default


def save(key, value):
    state.set(key, str(value).encode())


def started(version, replicas):
    """Scales `version` to `replicas`; True once every replica is healthy."""
    running = containers.scale(version, replicas)
    return all(health.probe(r.id).healthy for r in running)


def retired(keep):
    """Drains the replicas not of version `keep`, then stops them; True once none is left."""
    old = [r.id for r in containers.list() if r.version != keep]
    if not old:
        return True
    if not saved("draining"):
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
            name="{{name}}",
            version="0.1.0",
            description="Move the traffic to the new release in equal steps (Python)",
        )

    def validate(self, deployment):
        try:
            parse_whole("steps", param(deployment, "steps", "4"), 1, 100)
            parse_whole("interval", param(deployment, "interval", "10"), 0, 3600)
        except ValueError as e:
            raise Err(str(e))

    def step(self, deployment, cx):
        target = deployment.target
        if cx.phase == Phase.ROLLBACK:
            previous = deployment.previous
            if previous is None:
                containers.stop([r.id for r in containers.list()], 5_000)
                return StepOutcome_Done()
            if not started(previous.version, previous.replicas):
                return StepOutcome_Continue(200)
            routing.set_split([Weight(version=previous.version, weight=100)])
            return StepOutcome_Done() if retired(previous.version) else StepOutcome_Continue(200)

        if not started(target.version, target.replicas):
            # A release that never gets healthy fails the deployment, which rolls back.
            if cx.elapsed_ms > deployment.health.ready_timeout_ms:
                seconds = deployment.health.ready_timeout_ms // 1000
                return StepOutcome_Failed(f"{target.version} is not healthy after {seconds} s")
            return StepOutcome_Continue(200)
        if deployment.previous is None:
            routing.set_split([Weight(version=target.version, weight=100)])
            return StepOutcome_Done()
        steps = parse_whole("steps", param(deployment, "steps", "4"), 1, 100)
        interval_ms = 1000 * parse_whole("interval", param(deployment, "interval", "10"), 0, 3600)
        taken = saved("step")
        if taken < steps:
            taken += 1
            save("step", taken)
            share_now = share(taken, steps)
            routing.set_split([
                Weight(version=deployment.previous.version, weight=100 - share_now),
                Weight(version=target.version, weight=share_now),
            ])
            progress.log(progress.Level.INFO, f"{target.version} now gets {share_now}% of the traffic")
            progress.report(share_now * 9 // 10, f"step {taken} of {steps}")
            return StepOutcome_Continue(interval_ms if taken < steps else 0)
        return StepOutcome_Done() if retired(target.version) else StepOutcome_Continue(200)
