#!/usr/bin/env python3
"""The compose image, scripts/setup.sh and CMakeLists.txt agree (no containers).

  packages_check.py SOURCE_DIR BIN_DIR

Fails, saying what drifted, when:
  1. compose/Dockerfile installs a package by name instead of through
     setup.sh's groups and runtime-packages.sh, or builds and copies other
     programs than those whose libraries it derives;
  2. setup.sh's `build` group does not provide everything a configure of
     imgq without tests finds (every path in its CMake cache belongs to a
     package of the group or of what the group depends on), i.e. a build
     dependency was added to another group or not at all;
  3. a shared library one of the built programs loads (ldd) belongs to no
     package of the runtime stage's list (runtime-packages.sh) or of what
     those depend on.
"""
import os
import re
import subprocess
import sys
import tempfile

PROGRAMS = ["imgq-broker", "imgq-worker", "imgq"]


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def group(src, name):
    return run("bash", os.path.join(src, "scripts/setup.sh"), "--print", name).split()


def installed_graph():
    """Installed package -> the installed packages it depends on (alternatives
    and virtual packages resolved to every installed provider)."""
    out = run("dpkg-query", "-W", "-f=${Package}\t${Status}\t${Depends}, ${Pre-Depends}\t${Provides}\n")
    rows, providers = {}, {}
    for line in out.splitlines():
        pkg, status, deps, provides = line.split("\t")
        if not status.endswith(" installed"):
            continue
        rows[pkg] = deps
        for p in provides.split(","):
            p = p.strip().split(" ")[0]
            if p:
                providers.setdefault(p, set()).add(pkg)
    graph = {}
    for pkg, deps in rows.items():
        names = set()
        for clause in deps.split(","):
            for alt in clause.split("|"):
                n = alt.strip().split(" ")[0].split(":")[0]
                if not n:
                    continue
                if n in rows:
                    names.add(n)
                names |= providers.get(n, set())
        graph[pkg] = names
    return graph


def closure(graph, roots):
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(graph.get(p, ()))
    return seen


def owners(paths):
    """path -> owning package, trying the path, its target and the other
    side of the merged /usr."""
    def spellings(p):
        r = os.path.realpath(p)
        out = []
        for q in (p, r):
            out += [q, q[4:] if q.startswith("/usr/") else "/usr" + q]
        return out

    every = sorted({s for p in paths for s in spellings(p)})
    found = {}
    res = subprocess.run(["dpkg-query", "-S", *every], capture_output=True, text=True)
    for line in res.stdout.splitlines():
        pkgs, path = line.split(": ", 1)
        found[path] = pkgs.split(",")[0].split(":")[0].strip()
    result = {}
    for p in paths:
        for s in spellings(p):
            if s in found:
                result[p] = found[s]
                break
    return result


def check_dockerfile(src, errors):
    text = open(os.path.join(src, "compose/Dockerfile")).read()
    # Join continuation lines: one instruction a line.
    instructions = re.sub(r"\\\n", " ", text).splitlines()
    installs = [i for i in instructions if "apt-get install" in i]
    for i in installs:
        if "xargs -a /usr/local/share/imgq/runtime-packages.txt" not in i:
            errors.append("compose/Dockerfile installs packages by name; add them to a group of "
                          "scripts/setup.sh instead: " + i.strip()[:160])
    if not any(re.search(r"setup\.sh build\b", i) for i in instructions):
        errors.append("compose/Dockerfile's build stage does not run `scripts/setup.sh build`")
    derive = [i for i in instructions if "runtime-packages.sh" in i and i.lstrip().startswith("RUN")]
    copy = [i for i in instructions if i.startswith("COPY --from=build /src/build/bin/")]
    built = set(re.findall(r"build/bin/([\w-]+)", " ".join(derive)))
    copied = set(re.findall(r"build/bin/([\w-]+)", " ".join(copy)))
    if built != set(PROGRAMS) or copied != set(PROGRAMS):
        errors.append(f"compose/Dockerfile derives runtime packages for {sorted(built)} and copies "
                      f"{sorted(copied)}; both should be {PROGRAMS}")


def check_build_group(src, graph, errors):
    build = group(src, "build")
    missing = [p for p in build if p not in graph]
    if missing:
        errors.append(f"setup.sh build packages not installed here (run scripts/setup.sh): {missing}")
    provided = closure(graph, build)
    with tempfile.TemporaryDirectory() as tmp:
        # As the image configures: no tests, the commit given (so git is not asked).
        run("cmake", "-S", src, "-B", tmp, "-DIMGQ_BUILD_TESTS=OFF", "-DIMGQ_COMMIT=check")
        cache = open(os.path.join(tmp, "CMakeCache.txt")).read()
    paths = set()
    for m in re.finditer(r"^([A-Za-z_][\w-]*):(FILEPATH|PATH|STRING|INTERNAL)=(/usr/[^;\n]*)$", cache, re.M):
        name, value = m.group(1), m.group(3)
        if name.startswith("CMAKE_") and name not in ("CMAKE_CXX_COMPILER", "CMAKE_MAKE_PROGRAM",
                                                        "CMAKE_AR", "CMAKE_LINKER"):
            continue  # CMake's own settings (install prefix, its modules)
        for v in value.split(";"):
            if os.path.exists(v) and not os.path.isdir(v):
                paths.add(v)
            elif os.path.isdir(v) and name.endswith("_DIR"):
                # A package's CMake config folder: its files tell the owner.
                files = [os.path.join(v, f) for f in os.listdir(v)]
                paths.update(f for f in files[:1] if os.path.isfile(f))
    owned = owners(sorted(paths))
    for p in sorted(paths):
        pkg = owned.get(p)
        if pkg is None:
            errors.append(f"the build finds {p}, which no Debian package provides")
        elif pkg not in provided:
            errors.append(f"the build finds {p} from package {pkg}, which setup.sh's build group "
                          f"(the image's build stage) neither lists nor depends on")
    return len(paths)


def check_runtime(src, bindir, graph, errors):
    exes = [os.path.join(bindir, p) for p in PROGRAMS]
    res = subprocess.run(["bash", os.path.join(src, "scripts/runtime-packages.sh"), *exes],
                         capture_output=True, text=True)
    if res.returncode != 0:
        errors.append("scripts/runtime-packages.sh failed: " + res.stderr.strip())
        return 0
    runtime = res.stdout.split()
    for tool in group(src, "runtime_tools"):
        if tool not in runtime:
            errors.append(f"runtime tool {tool} is not in runtime-packages.sh's list")
    provided = closure(graph, runtime)
    libs = set()
    for exe in exes:
        for line in run("ldd", exe).splitlines():
            m = re.search(r"=> (/\S+)", line) or re.match(r"\s*(/\S+)", line)
            if m:
                libs.add(m.group(1))
    owned = owners(sorted(libs))
    for lib in sorted(libs):
        pkg = owned.get(lib)
        if pkg is None or pkg not in provided:
            errors.append(f"{lib} (package {pkg}) is loaded by the programs but not provided by the "
                          f"runtime stage's packages {runtime}")
    return len(libs)


def main():
    src, bindir = sys.argv[1], sys.argv[2]
    errors = []
    graph = installed_graph()
    check_dockerfile(src, errors)
    n_build = check_build_group(src, graph, errors)
    n_libs = check_runtime(src, bindir, graph, errors)
    if errors:
        print("\n".join("FAIL: " + e for e in errors))
        return 1
    print(f"ok: the Dockerfile installs only setup.sh's groups and derived packages; "
          f"{n_build} paths the build finds come from the build group; "
          f"{n_libs} libraries the programs load come from the runtime list")
    return 0


if __name__ == "__main__":
    sys.exit(main())
