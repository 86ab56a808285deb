"""What a robot's Python and rosdep need from the sources: code that runs on Python 3.10 (Humble) through
3.12 (Jazzy), and a package.xml whose dependencies are the ones the code imports.

Run-time code is what runs on the robot: lightlip_ros/, the launch file, and lightlip-build-engine (it builds
TensorRT engines on the target GPU). All their imports count, the lazy ones inside functions included (they
run too, e.g. when an engine loads), and so do the module-level imports of every project module they import.
"""
import ast
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from conftest import REPO_ROOT

PYTHON_SOURCES = ["lightlip_ros", "training", "launch", "test", "setup.py", *sorted(
    str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "scripts").glob("*.py"))]
OLDEST_PYTHON, NEWEST_PYTHON = (3, 10), (3, 12)
PROJECT_PACKAGES = {"lightlip_ros", "training"}
RUNTIME_ROOTS = ["lightlip_ros", "launch", "training/deploy/engine_builder.py"]

# Import name -> rosdep key (ROS packages are their own key; the others are keys of ros/rosdistro's
# rosdep/python.yaml, resolvable on Ubuntu jammy (Humble) and noble (Jazzy)).
ROSDEP_KEYS = {
    "rclpy": "rclpy",
    "rcl_interfaces": "rcl_interfaces",
    "builtin_interfaces": "builtin_interfaces",
    "sensor_msgs": "sensor_msgs",
    "diagnostic_msgs": "diagnostic_msgs",
    "lightlip_msgs": "lightlip_msgs",
    "ament_index_python": "ament_index_python",
    "launch": "launch",
    "launch_ros": "launch_ros",
    "launch_pytest": "launch_pytest",
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "scipy": "python3-scipy",
    "soundfile": "python3-soundfile",
    "yaml": "python3-yaml",
    "tqdm": "python3-tqdm",
    "aiohttp": "python3-aiohttp",
    "pytest": "python3-pytest",
    "ament_flake8": "ament_flake8",
    "audio_common_msgs": "audio_common_msgs",
}
# Import name -> rosdep key of a ROS package the runtime uses only where it is installed (a guarded
# import): not an <exec_depend>, but a <test_depend> since the tests exercise it.
OPTIONAL_AT_RUN_TIME = {"audio_common_msgs": "audio_common_msgs"}
# Import name -> what docs/robot.md tells robot users to pip-install, for modules that have no rosdep key
# on Humble/Jazzy or whose apt build is wrong for a Jetson (apt's python3-torch is a CPU build, and the
# key python3-onnxruntime-pip installs the CPU wheel next to the Jetson GPU one).
PIP_ON_THE_ROBOT = {
    "torch": "torch",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "librosa": "librosa",
    "soxr": "soxr",
    "cuda": "cuda-python",
}
# Import name -> what provides it on a Jetson without any install step of ours.
FROM_JETPACK = {"tensorrt": "tensorrt"}
# Import name -> the pip requirement that replaces Ubuntu 22.04's too old package on Humble (its
# python3-aiohttp 3.8.1 lacks AppRunner(shutdown_timeout=), which the web display uses).
NEWER_THAN_JAMMY = {"aiohttp": "aiohttp>=3.9"}
# Imported only by tests of the offline tools and the browser display: pip-installed where those tests run.
PIP_FOR_TESTS = {"tensorboard": "tensorboard", "selenium": "selenium"}


def module_name(path):
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name):
    """The project file that defines module `name`, or None."""
    base = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _statements(node, inside_functions):
    for child in ast.iter_child_nodes(node):
        if inside_functions or not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield child
            yield from _statements(child, inside_functions)


def imports_of(path, inside_functions=True):
    """(absolute module name, line) of the imports of a file, relative imports resolved; with
    inside_functions=False only those that run when the module is imported."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in _statements(ast.parse(path.read_text(), str(path)), inside_functions):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import module` imports the module too.
            found += [(base, node.lineno)] + [(f"{base}.{alias.name}", node.lineno) for alias in node.names
                                              if module_path(f"{base}.{alias.name}")]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "importorskip" and node.args and isinstance(node.args[0], ast.Constant)):
            found.append((node.args[0].value, node.lineno))  # pytest.importorskip("module")
    return found


def python_files(relative):
    path = REPO_ROOT / relative
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def external_imports(files, follow_project_imports):
    """{top-level module: ["file:line", ...]} of the modules outside the project that `files` import, all of
    their imports counted; project modules they import are followed for the imports that run at import time
    (a function's lazy import in a module used for one helper is not a dependency of the user)."""
    queue, seen, external = [(path, True) for path in files], set(), {}
    while queue:
        path, all_imports = queue.pop()
        if (path, all_imports) in seen or (path, True) in seen:
            continue
        seen.add((path, all_imports))
        for name, line in imports_of(path, all_imports):
            top = name.split(".")[0]
            if top in PROJECT_PACKAGES:
                if follow_project_imports:
                    parts = name.split(".")
                    # A module import runs its packages' __init__ first.
                    queue += [(found, False) for found in
                              (module_path(".".join(parts[:n])) for n in range(1, len(parts) + 1)) if found]
            elif top not in sys.stdlib_module_names and top != "__future__":
                external.setdefault(top, set()).add(f"{path.relative_to(REPO_ROOT)}:{line}")
    return {name: sorted(where) for name, where in external.items()}


def runtime_imports():
    return external_imports([file for root in RUNTIME_ROOTS for file in python_files(root)], True)


def imports_of_tests():
    """External imports of the test suite, its local helper modules (conftest, node_helpers, ...) left out."""
    local = {path.stem for path in (REPO_ROOT / "test").iterdir()}
    return {name: where for name, where in external_imports(python_files("test"), False).items()
            if name not in local}


def package_dependencies():
    """{tag: set of keys} of package.xml, after checking that it is a format 3 manifest of lightlip_ros."""
    root = ElementTree.parse(REPO_ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3", "package.xml must be a format 3 manifest"
    assert root.findtext("name") == "lightlip_ros"
    tags = ("depend", "exec_depend", "test_depend", "buildtool_depend")
    return {tag: {element.text.strip() for element in root.findall(tag)} for tag in tags}


def robot_doc():
    path = REPO_ROOT / "docs" / "robot.md"
    assert path.is_file(), "docs/robot.md is missing"
    return path.read_text()


def describe(where):
    return ", ".join(where[:3]) + (f" (+{len(where) - 3})" if len(where) > 3 else "")


# --- Python versions --------------------------------------------------------------------------------------

def test_no_code_needs_a_python_newer_than_3_10():
    """vermin: language features, modules and members that 3.10 lacks (tomllib, typing.Self, except*, ...)."""
    vermin = Path(sys.executable).parent / "vermin"
    result = subprocess.run(
        [str(vermin), "--format", "parsable", "--violations", "--no-tips", "--eval-annotations",
         "-t={}.{}-".format(*OLDEST_PYTHON), *PYTHON_SOURCES],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    # Parsable lines are file:line:column:python2:python3:what; the ones without a line are per-file and
    # overall summaries. A file vermin cannot parse (syntax newer than its own Python) is a located error too.
    problems = [line for line in result.stdout.splitlines() + result.stderr.splitlines()
                if line.split(":")[1:2] != [""] or "error" in line.lower()]
    assert result.returncode == 0 and not problems, "code that Python 3.10 cannot run:\n" + "\n".join(
        problems or [result.stdout[-2000:], result.stderr[-2000:]])


@pytest.mark.parametrize("version", [OLDEST_PYTHON, NEWEST_PYTHON], ids=lambda v: "python{}.{}".format(*v))
def test_every_file_compiles_on_the_oldest_and_newest_python(version):
    """The real compiler of each end of the range, warnings as errors (3.12 warns on invalid escapes)."""
    name = "python{}.{}".format(*version)
    candidates = [*sorted((Path.home() / ".pyenv" / "versions").glob("{}.{}.*/bin/".format(*version) + name)),
                  shutil.which(name)]
    interpreter = next((candidate for candidate in candidates if candidate and subprocess.run(
        [str(candidate), "-c", "pass"], capture_output=True).returncode == 0), None)
    if interpreter is None:
        pytest.skip(f"{name} is not installed on this machine (a pyenv shim without it does not count)")
    files = [str(path) for source in PYTHON_SOURCES for path in python_files(source)]
    checker = ("import sys, warnings\nwarnings.simplefilter('error')\nfailed = []\n"
               "for path in sys.argv[1:]:\n"
               "    with open(path, encoding='utf-8') as source:\n        text = source.read()\n"
               "    try:\n        compile(text, path, 'exec')\n"
               "    except (SyntaxError, SyntaxWarning, DeprecationWarning) as error:\n"
               "        failed.append(f'{path}:{getattr(error, \"lineno\", \"?\")}: {error}')\n"
               "print('\\n'.join(failed)); sys.exit(1 if failed else 0)\n")
    result = subprocess.run([str(interpreter), "-I", "-c", checker, *files], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"{name} rejects:\n{result.stdout}{result.stderr[-2000:]}"


def test_no_module_removed_by_python_3_12():
    removed = {"distutils", "imp", "asynchat", "asyncore", "smtpd"}
    used = [f"{path.relative_to(REPO_ROOT)}:{line}: {name}" for source in PYTHON_SOURCES
            for path in python_files(source) for name, line in imports_of(path) if name.split(".")[0] in removed]
    assert not used, "modules that Python 3.12 no longer has:\n" + "\n".join(used)


# --- package.xml -----------------------------------------------------------------------------------------

def test_every_runtime_import_has_an_exec_dependency_or_a_documented_install():
    declared = package_dependencies()
    run_time = declared["depend"] | declared["exec_depend"]
    unknown, missing = [], []
    for name, where in sorted(runtime_imports().items()):
        if name in OPTIONAL_AT_RUN_TIME:
            continue
        if name in ROSDEP_KEYS:
            if ROSDEP_KEYS[name] not in run_time:
                missing.append(f"{ROSDEP_KEYS[name]} (import {name}: {describe(where)})")
        elif name not in PIP_ON_THE_ROBOT and name not in FROM_JETPACK:
            unknown.append(f"{name}: {describe(where)}")
    assert not unknown, ("imports with no rosdep key or documented install in test_compat.py's maps:\n"
                         + "\n".join(unknown))
    assert not missing, "package.xml lacks <exec_depend> for:\n" + "\n".join(missing)


def test_every_declared_dependency_is_used():
    declared = package_dependencies()
    used_at_run_time = {ROSDEP_KEYS[name] for name in runtime_imports() if name in ROSDEP_KEYS}
    used_by_tests = {ROSDEP_KEYS[name] for name in imports_of_tests() if name in ROSDEP_KEYS}
    unused = sorted((declared["depend"] | declared["exec_depend"]) - used_at_run_time)
    assert not unused, f"package.xml declares run-time dependencies that no run-time code imports: {unused}"
    unused_tests = sorted(declared["test_depend"] - used_by_tests)
    assert not unused_tests, f"package.xml declares test dependencies that no test imports: {unused_tests}"
    assert declared["buildtool_depend"] == {"ament_python"}


def test_every_test_import_is_declared_or_documented():
    declared = package_dependencies()
    available = declared["depend"] | declared["exec_depend"] | declared["test_depend"]
    problems = []
    for name, where in sorted(imports_of_tests().items()):
        if name in ROSDEP_KEYS and ROSDEP_KEYS[name] not in available:
            problems.append(f"<test_depend>{ROSDEP_KEYS[name]}</test_depend> (import {name}: {describe(where)})")
        elif name not in ROSDEP_KEYS and name not in {**PIP_ON_THE_ROBOT, **FROM_JETPACK, **PIP_FOR_TESTS}:
            problems.append(f"{name}: no rosdep key or documented install ({describe(where)})")
    assert not problems, "test imports not covered by package.xml:\n" + "\n".join(problems)


def test_robot_doc_names_every_install_that_rosdep_does_not_do():
    doc = robot_doc()
    for install in [*PIP_ON_THE_ROBOT.values(), *FROM_JETPACK.values(), *PIP_FOR_TESTS.values(),
                    *NEWER_THAN_JAMMY.values()]:
        assert f"`{install}`" in doc or f" {install}" in doc, f"docs/robot.md does not say how to install {install}"
    assert "rosdep install --from-paths" in doc
