#!/usr/bin/env bash
# One prepared GPU run (a lent GPU machine has little time): every CUDA test, then the GPU benchmarks.
# Logs go to $OUT (the device tool's folder) or ./gpu_out.  Each step has its own time limit.
#   bash benchmarks/gpu_check.sh            # from the repository root: part 1, the CUDA tests and the GPU benchmarks
#   GPU_PART=2 bash benchmarks/gpu_check.sh # part 2: the hate-speech rows of issues 10 and 14 on the GPU
# Each part fits one device call (< 600 s).  Part 2 needs the hate-speech files on the device machine, which
# only sees the working tree: copy them into the ignored folder .gpu_data (3.5 MB) and carry it, e.g.
#   mkdir -p .gpu_data && cp -r ../shared/data/MANIFEST.md ../shared/data/hate_speech_stormfront .gpu_data/
#   device run: command "GPU_PART=2 bash benchmarks/gpu_check.sh", carry [".gpu_data", ".whl"]
set -u
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then   # packages the GPU image lacks, carried as wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc;
  python3 -c "import torch, numpy, scipy, sklearn; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'sklearn', sklearn.__version__)"
  python3 -c "import cupy; print('cupy', cupy.__version__)" 2>&1 | tail -1; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
step() { local name=$1 limit=$2; shift 2; local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - t0 )) s"; tail -n 4 "$OUT/$name.log"; }
if [ "${GPU_PART:-1}" = 2 ]; then
  if [ ! -d .gpu_data/hate_speech_stormfront ]; then echo "part 2 needs .gpu_data (see the top of this file)"; exit 2; fi
  export CFDKIT_DATA_HOME="$PWD/.gpu_data"
  # issue 14: hate-speech flip sets + verification vs sequential scikit-learn (on this machine's CPU), the
  # end-to-end/floor ratio; then the N = 1,000,000 sparse row; issue 10: minimal_sets on all 1,071 rows
  step bench_flip_hate 200 python3 benchmarks/bench_flip.py --device cuda --only a c d
  step bench_flip_sparse_1m 150 python3 benchmarks/bench_flip.py --device cuda --only e
  step bench_minimal_all 230 python3 benchmarks/bench_minimal.py --device cuda --sample 20
  exit 0
fi
# the CUDA tests: whole files where CPU and GPU cases sit together (fast), the gpu marker elsewhere
step tests_cuda_files 150 python3 -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py tests/test_model.py \
  tests/test_silent_wrong_core.py tests/test_validation.py tests/test_solvers.py
step tests_gpu_marked 150 python3 -m pytest -q -p no:cacheprovider -rs -m gpu tests/test_neural.py \
  tests/test_spurious_alignment.py tests/test_spurious_zoo.py tests/test_minimal.py tests/test_placebo.py
step bench_zoo 120 python3 benchmarks/bench_zoo.py --device cuda --gpu-sizes 1024 4096 16384 --sequential 2 --rounds 1
step bench_latent_shift 60 python3 benchmarks/bench_latent_shift.py --device cuda --n 400 --repeats 2
step bench_flip_dense 60 python3 benchmarks/bench_flip.py --device cuda --only b
exit 0
