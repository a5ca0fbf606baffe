#!/usr/bin/env bash
# Runs the whole Aether stack locally with no system paths touched: a dev PKI, sockets, state, audit
# logs and daemon logs all live under $AETHER_DEV_DIR (default ./.aether/dev).
#   stack.sh up      install what is missing, build, create the PKI, start aetherd, aurorad and cfcd, show them working
#   stack.sh down    stop the daemons
#   stack.sh status  health of the three daemons
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
dev=${AETHER_DEV_DIR:-$root/.aether/dev}
daemons=(aetherd aurorad cfcd)
cli() { node "$root/apps/cli/dist/main.js" --config "$dev/client.yaml" "$@"; }

# Installs the shipped files of $1 into $2 the way dpkg treats conffiles: a file you have not edited
# follows the checkout (the copy last installed is kept in $2/.shipped to tell); an edited one is kept
# and the new version is put beside it as <file>.shipped.
install_defaults() {
  local from=$1 to=$2 f name
  mkdir -p "$to/.shipped"
  for f in "$from"/*; do
    name=$(basename "$f")
    if [ ! -e "$to/$name" ] || cmp -s "$to/$name" "$to/.shipped/$name"; then
      cp "$f" "$to/$name"
    elif ! cmp -s "$to/$name" "$f"; then
      cp "$f" "$to/$name.shipped"
      echo "    kept your edited $to/$name; this checkout's version is $name.shipped" >&2
    fi
    cp "$f" "$to/.shipped/$name"
  done
}

write_configs() {
  mkdir -p "$dev"/{etc,run,state,log,audit,policy,playbooks}
  chmod 0750 "$dev/run"
  install_defaults "$root/deploy/policy" "$dev/policy"
  install_defaults "$root/deploy/aurora/playbooks" "$dev/playbooks"
  local d state
  for d in "${daemons[@]}"; do
    case $d in aetherd) state=$dev/state/aetherd ;; aurorad) state=$dev/state/aurora ;; cfcd) state=$dev/state/cfc ;; esac
    cat > "$dev/etc/$d.yaml" <<YAML
# Development configuration for $d, written by tools/dev/stack.sh.
socket:
  path: $dev/run/$d.sock
  mode: "0660"
  group: ""            # keep the invoking user's group; packaged installs use "aether"
tls:
  mode: mtls
  caFile: $dev/pki/ca.crt
  certFile: $dev/pki/$d.crt
  keyFile: $dev/pki/$d.key
stateDir: $state
policyDir: $dev/policy
auditLog: $dev/audit/$d.jsonl
tokens:
  publicKeyFile: $dev/run/token-signing.pub
YAML
    if [ "$d" = aetherd ]; then
      printf '  signingKeyFile: %s\n' "$dev/state/aetherd/tokens/signing.key" >> "$dev/etc/$d.yaml"
      cat >> "$dev/etc/$d.yaml" <<YAML
jobs:
  runtimeRoot: $dev/run/runc
  cgroupParent: /aether-dev
YAML
    fi
    if [ "$d" != aetherd ]; then
      cat >> "$dev/etc/$d.yaml" <<YAML
aetherd:
  socket: $dev/run/aetherd.sock
  caFile: $dev/pki/ca.crt
  certFile: $dev/pki/$d.crt
  keyFile: $dev/pki/$d.key
YAML
    fi
    if [ "$d" = aurorad ]; then
      cat >> "$dev/etc/$d.yaml" <<YAML
cfcd:
  socket: $dev/run/cfcd.sock
  caFile: $dev/pki/ca.crt
  certFile: $dev/pki/$d.crt
  keyFile: $dev/pki/$d.key
aurora:
  playbookDirs: [$dev/playbooks]
YAML
    fi
  done
  {
    echo "# Client configuration for the dev stack: the admin identity on every daemon."
    for d in "${daemons[@]}"; do
      printf '%s:\n  socket: run/%s.sock\n  caFile: pki/ca.crt\n  certFile: pki/admin.crt\n  keyFile: pki/admin.key\n' "$d" "$d"
    done
  } > "$dev/client.yaml"
}

stop_daemons() {
  local d pid
  for d in cfcd aurorad aetherd; do
    [ -f "$dev/run/$d.pid" ] || continue
    pid=$(cat "$dev/run/$d.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      echo "stopped $d (pid $pid)"
    fi
    rm -f "$dev/run/$d.pid"
  done
}

start_daemons() {
  local d
  for d in "${daemons[@]}"; do
    setsid node "$root/apps/$d/dist/main.js" --config "$dev/etc/$d.yaml" >>"$dev/log/$d.log" 2>&1 < /dev/null &
    echo $! > "$dev/run/$d.pid"
    echo "started $d (pid $!), log: $dev/log/$d.log"
  done
}

up() {
  bash tools/dev/ensure-deps.sh runtime
  mkdir -p "$root/.aether"
  echo "==> building"
  NX_DAEMON=false node_modules/.bin/nx run-many -t build --output-style=stream-without-prefixes >"$root/.aether/build.log" 2>&1 \
    || { tail -40 "$root/.aether/build.log"; echo "build failed (full log: .aether/build.log)" >&2; exit 1; }
  echo "==> dev PKI in $dev/pki"
  node apps/cli/dist/main.js pki init --dir "$dev/pki" >/dev/null
  write_configs
  stop_daemons
  echo "==> starting the stack under $dev"
  start_daemons
  echo
  echo "==> aether health (mTLS, admin certificate)"
  if ! cli health --wait 20; then
    echo "the stack did not become healthy; see $dev/log/*.log" >&2
    exit 1
  fi
  echo
  echo "==> buf curl through server reflection: the services aetherd exposes"
  node_modules/.bin/buf curl --unix-socket "$dev/run/aetherd.sock" --protocol grpc \
    --cacert "$dev/pki/ca.crt" --cert "$dev/pki/admin.crt" --key "$dev/pki/admin.key" --servername aetherd \
    --list-methods https://aetherd | sed 's/^/  /'
  echo
  echo "==> the main job: a command in the sandbox (runc under conmon: no network, read-only system, uid 65534)"
  cli jobs run --follow --cpu 500m --memory 256Mi --timeout 1m -- /bin/sh -c \
    'echo "hello from $(hostname) as uid $(id -u)"; echo "network: $(ls /sys/class/net)"; touch /usr/x 2>&1; echo "written to /work: $(date > /work/out && ls /work)"' \
    | sed 's/^/  /' || true
  echo
  echo "==> artifacts: a job's declared output is registered with its provenance (job, actor, digest)"
  cli jobs run --wait --output 'uname.txt:report' -- /bin/sh -c 'mkdir -p /work/outputs && uname -srm > /work/outputs/uname.txt' \
    | grep -E '^(Job|State|Outputs):' | sed 's/^/  /' || true
  cli artifacts ls --type report --limit 1 | sed 's/^/  /' || true
  echo
  echo "==> memory: a note with provenance, then a search whose every hit is a citation (entry, version, span)"
  cli memory add --title 'sandbox defaults' --tag demo \
    'Jobs run without network by default; host network needs a policy grant. Uploads are checked against their sha256 digest.' \
    | sed 's/^/  /' || true
  cli memory search 'network AND policy' --tag demo | sed 's/^/  /' || true
  echo
  echo "==> events: what aetherd recorded about the above, in order, resumable by sequence"
  cli events ls --source aetherd --all-pages | tail -n 6 | sed 's/^/  /' || true
  echo
  echo "==> metrics: the same numbers a Prometheus scraper gets"
  cli metrics --section jobs,events,rpc | head -n 16 | sed 's/^/  /' || true
  echo
  echo "==> the same API from another client: buf curl through server reflection, jobs.ListJobs"
  node_modules/.bin/buf curl --unix-socket "$dev/run/aetherd.sock" --protocol grpc \
    --cacert "$dev/pki/ca.crt" --cert "$dev/pki/admin.crt" --key "$dev/pki/admin.key" --servername aetherd \
    -d '{"pageSize": 1, "view": "JOB_VIEW_BASIC"}' https://aetherd/aether.jobs.v1.JobService/ListJobs 2>&1 \
    | grep -E '"(name|state|argv|exitCode)"|^ +"/' | sed 's/^/  /' || true
  echo
  echo "==> policy (Cedar, deploy/policy): may aurorad run a job with host network? (no: deny)"
  cli policy check --dir "$dev/policy" --principal aurorad --action jobs.SubmitJob --resource job \
    --attr network='"host"' --attr cpuMillicores=500 --attr memoryBytes=1073741824 --attr pidsMax=100 \
    --attr timeoutSeconds=60 --attr mounts='[]' --attr devices='[]' --attr profile='""' | sed 's/^/  /' || true
  echo "==> policy: may aurorad run a 2-hour job with no network? (only once a human approves: ask)"
  cli policy check --dir "$dev/policy" --principal aurorad --action jobs.SubmitJob --resource job \
    --attr network='"none"' --attr cpuMillicores=500 --attr memoryBytes=1073741824 --attr pidsMax=100 \
    --attr timeoutSeconds=7200 --attr mounts='[]' --attr devices='[]' --attr profile='""' | sed 's/^/  /' || true
  echo
  echo "==> audit: every call above is in a hash-chained log"
  cli audit tail "$dev/audit/aetherd.jsonl" | tail -n 3 | sed 's/^/  /'
  # With the signed checkpoint of the head (written every 10,000 records or minute, and at stop), once there is one.
  cp=$dev/state/aetherd/audit
  if [ -f "$cp/aetherd.checkpoint.json" ]; then
    cli audit verify "$dev/audit/aetherd.jsonl" --checkpoint "$cp/aetherd.checkpoint.json" \
      --public-key "$cp/aetherd-checkpoint.pub" | sed 's/^/  /'
  else
    cli audit verify "$dev/audit/aetherd.jsonl" | sed 's/^/  /'
  fi
  echo
  echo "==> intents (aurorad): one sentence becomes a checked plan — a sandboxed job, its output as an artifact,"
  echo "    a memory note, and an answer from memory with citations; every step carries the intent id"
  cli intent --watch "run python3 -c 'print(6*7)' and record the output" | sed 's/^/  /' || true
  echo
  echo "==> models (cfcd): a dataset artifact → training in a sandboxed job (an intent: aurorad's train-and-report"
  echo "    playbook drives cfcd) → checkpoint artifacts with lineage → a registered model → in-process Infer"
  node apps/cfcd/dist/trainer/make-dataset.js --fn sin --n 1000 --range -3,3 --seed 1 --out "$dev/sin.jsonl"
  if ds=$(cli artifacts add "$dev/sin.jsonl" --type dataset --no-progress); then
    cli intent --watch "train reference-mlp on $ds" | sed 's/^/  /' || true
    run=$(cli train ls --json | node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8"))[0]; if (r) console.log(r.name)')
    if [ -n "$run" ]; then
      cli train get "$run" | sed 's/^/  /' || true
      model=$(cli train get "$run" --json | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).model)')
      echo "  the model on x = -1.5, 0, 1.5 (sin x = -0.997, 0, 0.997):"
      cli models infer "$model" --input 'x=[[-1.5],[0],[1.5]]' | sed 's/^/  /' || true
    fi
  fi
  echo
  echo "==> an intent that policy denies before anything runs: a job with host network for aurorad"
  cli intent --goal run-command --param command='python3 -c "import urllib.request"' \
    --param network=NETWORK_MODE_HOST | sed 's/^/  /' || true
  cat <<MSG

The stack is running. Try:
  export AETHER_CONFIG=$dev/client.yaml
  node apps/cli/dist/main.js health
  node apps/cli/dist/main.js intent --watch "what do we know about sandbox"
Stop it with: npm stop
MSG
}

case ${1:-up} in
  up) up ;;
  down) stop_daemons ;;
  status) cli health ;;
  *) echo "usage: $0 up|down|status" >&2; exit 64 ;;
esac
