"""The ``repwidget`` command: ``repwidget demo`` opens JupyterLab on a copy of the quickstart notebook."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path

from ._version import __version__

PACKAGE = Path(__file__).resolve().parent


def notebooks_dir() -> Path:
    """The quickstart and workshop notebooks: the checkout's ``notebooks/``, or the packaged copies."""
    checkout = PACKAGE.parent / "notebooks"
    return checkout if (checkout / "quickstart.ipynb").is_file() else PACKAGE / "notebooks"


def _workshops() -> str:
    """How many workshop notebooks there are (besides the quickstart), as a word for the help."""
    n = sum(1 for path in notebooks_dir().glob("*.ipynb") if path.name != "quickstart.ipynb")
    words = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    return words[n] if n < len(words) else str(n)


def copy_notebooks(target: Path) -> list[tuple[Path, bool]]:
    """Copy the quickstart and workshop notebooks into ``target`` (made if missing), never overwriting a
    file there: each notebook's path in ``target`` and whether it was copied now (False: kept as it was)."""
    target.mkdir(parents=True, exist_ok=True)
    return [
        (target / source.name, _copy_new(source, target / source.name))
        for source in sorted(notebooks_dir().glob("*.ipynb"))
    ]


#: JupyterLab quiet (``repwidget demo``, the browser tests): no "Would you like to get notified about
#: official Jupyter news?" pop-up over the notebook (a setting: the server's news_url alone does not stop
#: it), no update check, nothing fetched
QUIET_LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}
QUIET_LAB_FLAGS = ["--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]


def _lab_settings(folder: Path) -> Path:
    """The demo's own JupyterLab settings directory, in ``folder``: news and update checks off (written
    each time); what else is set there, e.g. a theme picked in an earlier demo, is kept."""
    settings = folder / ".jupyterlab-settings"
    for plugin, values in QUIET_LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))
    return settings


def _free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def _wait_until_it_answers(server: subprocess.Popen, ip: str, port: int) -> bool:
    """Wait until JupyterLab answers HTTP on ``port`` (asked on 127.0.0.1 when it listens on every address), so that
    the address printed next works at once; False if the server stopped first."""
    host = "127.0.0.1" if ip in ("", "0.0.0.0", "::", "localhost") else ip
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/api"
    print("Waiting for JupyterLab to answer...", flush=True)
    while server.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return True
        except urllib.error.HTTPError:
            return True  # it answered, if not with 200
        except OSError:
            time.sleep(0.25)
    return False


def demo(args: argparse.Namespace) -> int:
    """Copy the notebooks into a work folder (never overwriting one there) and start JupyterLab on its
    quickstart, news and update checks off; say where to point the browser."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        print("repwidget demo needs JupyterLab: pip install 'repwidget[lab]'", file=sys.stderr)
        return 1
    folder = Path(args.folder).resolve()
    kept = [path.name for path, copied in copy_notebooks(folder) if not copied]
    port = _free_port(args.port)
    token = args.token or secrets.token_hex(16)
    url = f"http://{args.ip}:{port}/lab/tree/quickstart.ipynb?token={token}"
    command = [
        sys.executable, "-m", "jupyterlab", f"--ServerApp.ip={args.ip}", f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--no-browser", *QUIET_LAB_FLAGS,
    ]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(_lab_settings(folder))}
    print(f"repwidget {__version__}: starting JupyterLab on {folder / 'quickstart.ipynb'}")
    print(
        "The notebooks are your copies in " + str(folder)
        + (f" (kept as you left them: {', '.join(kept)})" if kept else "")
    )  # fmt: skip
    server = subprocess.Popen(command, env=env)
    try:
        if not _wait_until_it_answers(server, args.ip, port):
            print(
                f"repwidget demo: JupyterLab stopped before it answered (exit status {server.returncode})",
                file=sys.stderr,
            )
            return server.returncode or 1
    except KeyboardInterrupt:
        server.terminate()
        return server.wait()
    opened = False
    if not args.no_browser:
        try:
            opened = webbrowser.get() is not None and webbrowser.open(url)
        except webbrowser.Error:
            opened = False
    print(("Opened in your browser: " if opened else "Open this address in a browser: ") + url, flush=True)
    print("Stop with Ctrl+C.", flush=True)
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        return server.wait()


def notebooks(args: argparse.Namespace) -> int:
    """Copy the quickstart and workshop notebooks into a folder (never overwriting a file, never through a link)."""
    target = Path(args.folder)
    if target.exists() and not target.is_dir():
        print(f"repwidget notebooks: {str(target)!r} is a file, not a folder; name a folder", file=sys.stderr)
        return 1
    try:
        done = copy_notebooks(target)
    except OSError as e:
        return _folder_error(target, e)
    for destination, copied in done:
        if copied:
            print(f"copied {destination}")
        elif destination.is_symlink():
            print(f"skipped {destination} (a symbolic link; repwidget never writes through one)")
        else:
            print(f"kept {destination} (already there)")
    print(f"open them with: jupyter lab {target}")
    return 0


def as_this_kernel_says(notebook: bytes) -> bytes:
    """``notebook`` with the kernel metadata this machine's Python kernel reports (its display name, the Python
    version): JupyterLab writes them in when the kernel starts, and a copy that already holds them does not show
    as modified (●) on opening. Anything unreadable is copied as it is."""
    try:
        nb = json.loads(notebook)
        from jupyter_client.kernelspec import KernelSpecManager

        spec = nb["metadata"].get("kernelspec", {})
        spec["display_name"] = KernelSpecManager().get_kernel_spec(spec.get("name", "python3")).display_name
        v = sys.version_info
        nb["metadata"]["language_info"] = {
            "codemirror_mode": {"name": "ipython", "version": v.major}, "file_extension": ".py",
            "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
            "pygments_lexer": f"ipython{v.major}", "version": f"{v.major}.{v.minor}.{v.micro}",
        }  # fmt: skip
    except Exception:  # not JSON, no such kernel, no jupyter_client: a plain copy
        return notebook
    return (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode()


def _copy_new(source: Path, destination: Path) -> bool:
    """Copy ``source`` to a new file ``destination``; False if anything (a file, a link, even a dangling one)
    is already there. Exclusive creation makes the check and the creation one step, so nothing is overwritten."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(destination, flags, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(as_this_kernel_says(source.read_bytes()))
    except BaseException:
        destination.unlink(missing_ok=True)  # no half-written notebook left behind
        raise
    return True


def _folder_error(folder: Path, error: OSError) -> int:
    """One line on stderr for a folder that cannot hold the notebooks; exit status 1."""
    reason = error.strerror or type(error).__name__
    where = f" ({error.filename})" if error.filename and str(error.filename) != str(folder) else ""
    print(f"repwidget notebooks: cannot copy the notebooks into {str(folder)!r}: {reason}{where}", file=sys.stderr)
    return 1


def info(args: argparse.Namespace) -> int:
    """Load a model and print what repwidget found in it."""
    from .model import ModelLoadError, load

    try:
        model = load(args.model)
    except ModelLoadError as e:
        print(f"repwidget: {e}", file=sys.stderr)
        return 2
    print(model)
    for key, value in vars(model.arch).items():
        print(f"  {key:15s} {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="repwidget",
        description="See the insides of transformer models in Jupyter: click selects; shift+click or the ablate "
        "button ablates.",
    )
    parser.add_argument("--version", action="version", version=f"repwidget {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("demo", help="copy the notebooks to ./repwidget-notebooks and open JupyterLab on the quickstart")
    p.add_argument("--port", type=int, default=8888, help="port to serve on (the next free one if taken)")
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--token", default=None, help="the access token (default: a new random one)")
    p.add_argument("--no-browser", action="store_true", help="print the address instead of opening a browser")
    p.add_argument(
        "--folder", default="repwidget-notebooks", help="the work folder the notebooks are copied to and run from "
        "(default: ./repwidget-notebooks; notebooks already there are kept)",
    )  # fmt: skip
    p.set_defaults(func=demo)
    p = sub.add_parser("notebooks", help=f"copy the quickstart and the {_workshops()} workshop notebooks into a folder")
    p.add_argument("folder", nargs="?", default="repwidget-notebooks", help="where (default: ./repwidget-notebooks)")
    p.set_defaults(func=notebooks)
    p = sub.add_parser("info", help="load a model (directory or hub id) and print the parts repwidget found")
    p.add_argument("model", help="a local directory or a hub id; 'demo' for the shipped demo model")
    p.set_defaults(func=info)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if getattr(args, "model", None) == "demo":
        from .demo import MODEL_DIR

        args.model = str(MODEL_DIR)
    return args.func(args)
