"""{{name}}: a Hivemind hook in Python.

`--pre-hook "plugin:{{name}} ./migrate --all"` runs `./migrate --all` in a one-off
replica of the new release before any traffic moves, and fails the deployment (nothing
changes) unless it exits 0. A hook may run jobs (`jobs`), post JSON to the hosts the
server allows (`http`), and log (`progress`); nothing else.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import jobs, progress
from wit_world.imports.types import PluginInfo

from verdict import verdict


class WitWorld(wit_world.WitWorld):
    def info(self):
        return PluginInfo(
            name="{{name}}",
            version="0.1.0",
            description="Run a command in a one-off replica of the new release (Python)",
        )

    def run(self, deployment, stage, argument):
        command = argument.strip()
        if not command:
            raise Err('give the command to run, as in --pre-hook "plugin:{{name}} ./migrate"')
        progress.log(progress.Level.INFO, f"running `{command}`")
        job = jobs.run_job(deployment.target.version, command, 600_000)
        passed, message = verdict(command, job.exit_code, job.output)
        if not passed:
            raise Err(message)
        return message
