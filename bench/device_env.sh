# Sourced by the device scripts (bench/gpu_checks.sh, bench/device_frontier.sh): installs the wheels in .whl
# (`bash bench/gpu_wheels.sh` writes them) into /tmp/site with --no-deps, and exports PYTHONPATH; logs to $1.
PY=${PY:-python3}
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    > "$1" 2>&1
  export PYTHONPATH=/tmp/site
fi
