#!/usr/bin/env python3
"""Generate loader-only stubs for the CUDA libraries that PyPI's Linux torch wheel
links against but never calls on CPU tensors (cuBLAS, cuDNN, NCCL, cuFFT, cuSPARSE,
cuSPARSELt, cuFile, NVRTC, NVSHMEM, cuSOLVER, nvJitLink).

Why: torch on PyPI (Linux x86_64) is only published as the CUDA build; its libraries
carry DT_NEEDED entries for ~2 GB of nvidia-* wheels. The CPU kernels live in
libtorch_cpu.so, which needs only libcudart and libcupti (installed for real, ~14 MB).
The other libraries only have to satisfy the dynamic loader. Each stub exports exactly
the symbols (and symbol-version nodes) that torch's own libraries import from it; every
stub function aborts loudly if it is ever called, so a CPU benchmark can never silently
run through one.

Usage: make_cuda_stubs.py TARGET_DIR   (the pip --target folder holding torch/ and nvidia/)
"""
import os, re, subprocess, sys, tempfile

target = os.path.abspath(sys.argv[1])
torch_lib = os.path.join(target, "torch", "lib")
out_dir = os.path.join(target, "nvidia", "cu13", "lib")  # on torch's RPATH
os.makedirs(out_dir, exist_ok=True)

# libcaffe2_nvrtc.so (needs the driver, libcuda.so.1) is only dlopen'ed for CUDA JIT;
# it is left alone, and no libcuda stub is made (cudart must keep seeing "no driver").
objs = [os.path.join(torch_lib, f) for f in sorted(os.listdir(torch_lib))
        if ".so" in f and not f.startswith("libcaffe2_nvrtc")]
objs += [os.path.join(target, "torch", f) for f in os.listdir(os.path.join(target, "torch"))
         if f.startswith("_C") and f.endswith(".so")]

def needed(path):
    d = subprocess.run(["readelf", "-d", "-W", path], capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", d)

LDCACHE = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout

def search_dirs():
    return [torch_lib, out_dir]

def resolvable(soname):
    if any(os.path.exists(os.path.join(d, soname)) for d in search_dirs()):
        return True
    return re.search(r"^\s*%s\s" % re.escape(soname), LDCACHE, re.M) is not None

CUDA_PREFIXES = ("libcublas", "libcudnn", "libnccl", "libcufft", "libcusparse", "libcufile",
                 "libnvrtc", "libnvshmem", "libcusolver", "libnvJitLink")
missing = sorted({n for o in objs for n in needed(o)
                  if n.startswith(CUDA_PREFIXES) and not resolvable(n)})
other = sorted({n for o in objs for n in needed(o)
                if not n.startswith(CUDA_PREFIXES) and not n.startswith("ld-linux")
                and not resolvable(n)})
if other:
    sys.exit("make_cuda_stubs: non-CUDA libraries missing, refusing to stub: %s" % other)
if not missing:
    print("make_cuda_stubs: nothing missing"); sys.exit(0)

# Undefined dynamic symbols of torch's libraries, with the version node they ask for,
# and which library each version node belongs to (readelf -V, .gnu.version_r).
syms = {m: set() for m in missing}
versions = {m: [] for m in missing}      # version nodes each stub must define
sym_version = {}                          # (lib, symbol) -> version node
ver_file = {}
for o in objs:
    v = subprocess.run(["readelf", "-V", "-W", o], capture_output=True, text=True).stdout
    cur = None
    for line in v.splitlines():
        mf = re.search(r"File: (\S+)", line)
        if mf: cur = mf.group(1); continue
        mn = re.search(r"Name: (\S+)", line)
        if mn and cur in versions:
            ver_file[mn.group(1)] = cur
            if mn.group(1) not in versions[cur]: versions[cur].append(mn.group(1))
unversioned = set()
for o in objs:
    d = subprocess.run(["readelf", "--dyn-syms", "-W", o], capture_output=True, text=True).stdout
    for line in d.splitlines():
        p = line.split()
        if len(p) >= 8 and p[6] == "UND" and p[7]:
            name = p[7]
            if "@" in name:
                base, ver = name.split("@", 1)
                ver = ver.split(" ")[0].lstrip("@")
                lib = ver_file.get(ver)
                if lib in syms:
                    syms[lib].add(base); sym_version[(lib, base)] = ver
            elif p[4] != "WEAK":  # weak refs (__gmon_start__, ...) need no definition
                unversioned.add(name)

# Unversioned imports that no real library provides go to the stub of the library
# whose name prefix matches (cudnnX -> libcudnn, ncclX -> libnccl, ...).
def defined_somewhere(sym):
    return sym in provided
provided = set()
real = [o for o in objs] + [os.path.join(out_dir, f) for f in os.listdir(out_dir)]
for libc in ["libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libdl.so.2",
             "libpthread.so.0", "librt.so.1"]:
    m = re.search(r"^\s*%s \(libc6,x86-64[^)]*\) => (\S+)" % re.escape(libc), LDCACHE, re.M)
    if m: real.append(m.group(1))
for r in real:
    if not os.path.isfile(r) or ".so" not in r: continue
    d = subprocess.run(["readelf", "--dyn-syms", "-W", r], capture_output=True, text=True).stdout
    for line in d.splitlines():
        p = line.split()
        if len(p) >= 8 and p[6] != "UND" and p[7]:
            provided.add(p[7].split("@")[0])
prefix = {"libcublas": ("cublas",), "libcublasLt": ("cublasLt",), "libcudnn": ("cudnn",),
          "libnccl": ("nccl", "pnccl"), "libcufft": ("cufft",), "libcusparse": ("cusparse",),
          "libcusparseLt": ("cusparseLt",), "libcufile": ("cuFile",), "libnvrtc": ("nvrtc",),
          "libnvshmem_host": ("nvshmem",), "libcusolver": ("cusolver",), "libnvJitLink": ("nvJitLink",)}
leftovers = []
for s in sorted(unversioned):
    if s in provided: continue
    home = None
    for m in missing:
        stem = m.split(".so")[0]
        if any(s.startswith(pf) for pf in prefix.get(stem, ())):
            if home is None or len(stem) > len(home.split(".so")[0]):
                home = m
    if home: syms[home].add(s)
    else: leftovers.append(s)
if leftovers:
    # Harmless for lazily bound calls; put them in the first stub so that the loader
    # also finds non-lazy (GOT) references.
    syms[missing[0]].update(leftovers)

cc = os.environ.get("CC", "gcc")
tmp = tempfile.mkdtemp()
for m in missing:
    c = os.path.join(tmp, m + ".c"); vs = os.path.join(tmp, m + ".map")
    with open(c, "w") as f:
        f.write("#include <stdio.h>\n#include <stdlib.h>\n")
        f.write("static void die(const char *s){fprintf(stderr,\"CUDA stub %s: %%s called (CPU-only torch anchor)\\n\",s);abort();}\n" % m)
        for s in sorted(syms[m]):
            f.write('void %s(void){die("%s");}\n' % (s, s))
    with open(vs, "w") as f:
        if not versions[m]:
            f.write("{\n")
            if syms[m]:
                f.write(" global:\n" + "".join("  %s;\n" % s for s in sorted(syms[m])))
            f.write(" local: *;\n};\n")
        else:
            for i, ver in enumerate(versions[m]):
                mine = sorted(s for s in syms[m]
                              if sym_version.get((m, s), versions[m][0]) == ver)
                f.write("%s {\n" % ver)
                if mine:
                    f.write(" global:\n" + "".join("  %s;\n" % s for s in mine))
                if i == 0:
                    f.write(" local: *;\n")
                f.write("};\n")
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", os.path.join(out_dir, m),
                    "-Wl,-soname," + m, "-Wl,--version-script=" + vs, c], check=True)
    print("make_cuda_stubs: %-22s %4d symbols, version nodes %s"
          % (m, len(syms[m]), ",".join(versions[m]) or "-"))
