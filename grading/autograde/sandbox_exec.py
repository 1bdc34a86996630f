"""Sandbox side of notebook execution: run one notebook cell by cell, save it after every cell.

``python -I -S sandbox_exec.py IN.ipynb OUT.ipynb CELL_TIMEOUT FOLDER`` runs inside the sandbox; the
kernel runs in FOLDER (the submission's folder) with ``--InteractiveShell.xmode=Minimal`` (tracebacks
without source lines, so a failing restored test cell prints no hidden test source) and the same
isolated ``sys.path`` as this script (the submission's folder first, then site-packages, never the
kit). A cell that runs past CELL_TIMEOUT seconds is interrupted (its output shows it) and the next
cell runs; when the kernel dies (``os._exit``, a segfault, the memory limit), the remaining cells get
an error output saying so and are not run. No verdict here: the trusted side reads OUT.ipynb back
as data.
"""

import json
import os
import sys

KERNEL = "hw4-sandbox"


def _setup_path():
    site = [p for p in os.environ.get("HW4_SITE_PACKAGES", "").split(os.pathsep) if p]
    sys.path[:] = [p for p in sys.path if p] + site
    return site


def _write_kernelspec(site):
    """A kernel that starts like this script: isolated mode, no site, the submission folder first."""
    folder = os.path.join(os.environ["JUPYTER_DATA_DIR"], "kernels", KERNEL)
    os.makedirs(folder, exist_ok=True)
    boot = ("import sys; sys.path[:] = [''] + [p for p in sys.path if p] + " + repr(site) + "; "
            "from ipykernel import kernelapp; kernelapp.launch_new_instance()")
    spec = {"argv": [sys.executable, "-I", "-S", "-c", boot, "-f", "{connection_file}",
                     "--InteractiveShell.xmode=Minimal"],
            "display_name": "Python 3 (HW4 sandbox)", "language": "python"}
    with open(os.path.join(folder, "kernel.json"), "w") as fh:
        json.dump(spec, fh)


def _save(nb, path):
    import nbformat
    tmp = path + ".part"
    with open(tmp, "w") as fh:
        nbformat.write(nb, fh)
    os.replace(tmp, path)


def _error(ename, evalue):
    import nbformat
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def main():
    src, dest, cell_timeout, folder = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    os.chdir(folder)
    site = _setup_path()
    _write_kernelspec(site)
    os.environ["JUPYTER_PATH"] = os.environ["JUPYTER_DATA_DIR"]
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=cell_timeout, interrupt_on_timeout=True,
                            allow_errors=True, record_timing=False,
                            resources={"metadata": {"path": os.getcwd()}})
    _save(nb, dest)
    dead_at = None
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if dead_at is not None:
                cell.outputs = [_error("NotExecuted", f"not run: the kernel died in cell {dead_at + 1}")]
                continue
            try:
                client.execute_cell(cell, index)
            except DeadKernelError as exc:
                dead_at = index
                cell.outputs = list(cell.get("outputs", [])) + [_error("DeadKernelError", f"the kernel died: {exc}")]
            _save(nb, dest)
    _save(nb, dest)


if __name__ == "__main__":
    main()
