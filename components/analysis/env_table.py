"""The registered environments: ``marlshare envs`` lists every family's tasks; ``marlshare envs FAMILY``
builds each task of that family once (one copy) and shows its agents, observation, action and state
sizes (building takes a while for SMAX and MaMuJoCo: it compiles or loads each map / robot)."""

from __future__ import annotations

import argparse
import contextlib
import io
import textwrap
import warnings


@contextlib.contextmanager
def quiet():
    """Keep what simulators print while they are imported or built (JaxMARL's "Importing submoduled
    environments...", Gymnasium-Robotics' registration notes, their warnings) out of the table: at
    the file descriptors too, since an import on the way swaps ``sys.stdout`` for the real one."""
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def describe(name: str) -> dict:
    """Agents and sizes of one env, or the reason it cannot be built here (its whole first line)."""
    from marlshare.envs import env_info, make_env

    try:
        with quiet():
            env = make_env(name, num_envs=1, seed=0)
    except Exception as err:  # a missing simulator or binary: show why, keep listing
        return {"env": name, "error": f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"}
    info = env_info(env)
    env.close()
    action = f"discrete {info.action_dim}" if info.discrete else f"continuous {info.action_dim}"
    return {"env": name, "agents": info.n_agents, "observation": info.obs_dim, "action": action,
            "state": info.state_dim if info.state_dim is not None else "-"}


def main(argv=None):
    from marlshare.envs import FAMILIES, tasks

    parser = argparse.ArgumentParser(prog="marlshare envs", description=__doc__.splitlines()[0])
    parser.add_argument("family", nargs="?", choices=sorted(FAMILIES), help="show sizes for this family's tasks")
    parser.add_argument("--match", default="", help="only tasks whose name contains this")
    parser.add_argument("--limit", type=int, default=40, help="at most this many tasks per family (0: all)")
    args = parser.parse_args(argv)

    def chosen(names):
        names = [n for n in names if args.match in n]
        return names if not args.limit or len(names) <= args.limit else names[:args.limit]

    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    if args.family is None:
        for family in sorted(FAMILIES):
            try:
                with quiet():
                    names = [n for n in tasks(family) if args.match in n]
                shown = chosen(names)
                text = f"{len(names)} tasks: " + ", ".join(shown) + (", ..." if len(shown) < len(names) else "")
            except Exception as err:  # an optional dependency missing
                text = f"unavailable ({type(err).__name__}: {err})"
            console.print(f"[bold]{family}[/bold]  " + textwrap.fill(text, 100, subsequent_indent="  "))
        console.print("Use as env=<family>/<task>; `marlshare envs <family> [--match TEXT] [--limit N]` shows agents "
                      "and sizes (--limit 0: every task).")
        return
    table = Table(title=f"{args.family} environments (one copy each)")
    for column in ("env", "agents", "observation", "action", "state"):
        table.add_column(column, justify="left" if column in ("env", "action") else "right")
    with quiet():
        names = tasks(args.family)
    for task in chosen(names):
        row = describe(f"{args.family}/{task}")
        if "error" in row:
            table.add_row(row["env"], "-", "-", row["error"], "-")
        else:
            table.add_row(*(str(row[c]) for c in ("env", "agents", "observation", "action", "state")))
    console.print(table)


if __name__ == "__main__":
    main()
