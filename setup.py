"""Build the compiled modules of fastnn from csrc/.

Every ``csrc/<name>.pyx`` becomes the private module ``fastnn._<name>``, linked
with the hand-written C sources it needs (the GEMM). OpenMP is used when a test
compile shows the compiler supports it; ``FASTNN_NO_OPENMP=1`` forces a serial
build. Without OpenMP the ``prange`` loops run serially and
``fastnn.config.openmp_enabled()`` reports False.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent.resolve()
CSRC = "csrc"

# C sources linked into each extension (kept explicit: a new module says what it needs).
C_SOURCES = {
    "gemm_binding": ["csrc/gemm.c"],
    "kernels": ["csrc/gemm.c"],
    "fused": ["csrc/gemm.c"],
    "openmp_helpers": [],
}


def _openmp_flags(compiler_type):
    """Return (compile_args, link_args) for OpenMP, or None if it does not work."""
    if os.environ.get("FASTNN_NO_OPENMP", "").strip().lower() not in ("", "0", "false", "no", "off"):
        return None
    if compiler_type == "msvc":
        return ["/openmp"], []
    if sys.platform == "darwin":
        # Apple clang needs libomp (brew install libomp); cibuildwheel sets it up.
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, lflags in candidates:
        if _test_compile(cflags, lflags):
            return cflags, lflags
    return None


def _test_compile(cflags, lflags):
    """Compile and link a tiny OpenMP program with the compiler Python was built with."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    code = (
        "#include <omp.h>\n#include <stdio.h>\n"
        "int main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\n"
        "printf(\"%d\", omp_get_max_threads()>0);return 0;}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "omp_test.c")
        src.write_text(code)
        exe = Path(tmp, "omp_test")
        cmd = cc.split() + cflags + [str(src), "-o", str(exe)] + lflags
        try:
            return subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


class BuildExt(build_ext):
    """Adds OpenMP and optimization flags once the compiler is known."""

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        omp = _openmp_flags(ctype)
        if ctype == "msvc":
            base = ["/O2"]
        else:
            # No -march=native: wheels must run anywhere; the GEMM picks AVX2/FMA at run time.
            # -fno-math-errno lets gcc vectorise loops calling sqrt (the optimizer updates);
            # it changes no result, only whether errno is set. -fno-trapping-math lets it
            # turn a select between computed values (leaky_relu', elu') into a vector
            # blend; fastnn never unmasks floating-point traps, so no result changes.
            # -g0: no debug info (it made the modules 6x larger; symbols stay for profilers).
            base = ["-O3", "-g0", "-fno-math-errno", "-fno-trapping-math", "-fno-strict-aliasing",
                    "-Wno-unused-function", "-Wno-unreachable-code"]
        for ext in self.extensions:
            ext.extra_compile_args = base + (omp[0] if omp else [])
            ext.extra_link_args = (omp[1] if omp else [])
            ext.define_macros = list(ext.define_macros or []) + [
                ("FASTNN_OPENMP", "1" if omp else "0"),
            ]
        if omp is None:
            print("fastnn: building WITHOUT OpenMP (kernels run on one thread)")
        else:
            print("fastnn: building with OpenMP flags", omp[0])
        # setuptools skips a module whose sources are older than its build, and does not
        # know the OpenMP setting changed: a rebuild with the other setting left the
        # modules that were skipped with the old one (fastnn then misreports OpenMP).
        # One stamp per module: a partial build (FASTNN_BUILD_ONLY) records only its own.
        setting = " ".join(omp[0] + omp[1]) if omp else "none"
        stamps = [Path(self.build_temp, f"openmp-setting-{ext.name}") for ext in self.extensions]
        if any(not s.is_file() or s.read_text() != setting for s in stamps):
            self.force = True
        super().build_extensions()
        for stamp in stamps:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(setting)


def extensions():
    exts = []
    # FASTNN_BUILD_ONLY=kernels,gemm_binding builds a subset (for development).
    only = {s for s in os.environ.get("FASTNN_BUILD_ONLY", "").split(",") if s}
    for pyx in sorted(Path(HERE, CSRC).glob("*.pyx")):
        name = pyx.stem
        if only and name not in only:
            continue
        sources = [f"{CSRC}/{pyx.name}"] + C_SOURCES.get(name, [])
        sources = [s for s in sources if Path(HERE, s).exists()]
        exts.append(
            Extension(
                f"fastnn._{name}",
                sources=sources,
                include_dirs=[numpy.get_include(), CSRC],
                # Header and .pxd edits must rebuild the modules that include them.
                depends=sorted(f"{CSRC}/{p.name}" for p in Path(HERE, CSRC).glob("*.[hp]*")
                               if p.suffix in (".h", ".pxd")),
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return cythonize(
        exts,
        build_dir="build/cython",  # generated .c stays out of the source tree
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
