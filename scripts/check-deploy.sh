#!/usr/bin/env bash
# Checks the deployment files without running them (no systemd as PID 1, no Docker engine):
#   - deploy/cmdbus.service with `systemd-analyze verify` (Debian's systemd), which must print
#     nothing: it exits 0 even on an unknown key or a bad value, so any line it prints fails;
#   - docker-compose.yml alone and with docker-compose.cluster.yml on top with
#     `docker-compose config -q` (Debian's docker-compose: the schema, the YAML, the merge, the
#     services each depends on), then every file the stack mounts or builds from must exist.
# Run by scripts/test.sh; runs alone too. Exits non-zero on the first broken file.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# verify also wants ExecStart's program to exist: check the unit as written, with only that
# path pointed at a stand-in (the unit installs the binary at /usr/local/bin/cmdbus).
unit=deploy/cmdbus.service
grep -q '^ExecStart=/usr/local/bin/cmdbus ' "$unit" || {
  echo "$unit: ExecStart must run /usr/local/bin/cmdbus" >&2
  exit 1
}
printf '#!/bin/sh\n' > "$work/cmdbus"
chmod +x "$work/cmdbus"
sed "s#^ExecStart=/usr/local/bin/cmdbus #ExecStart=$work/cmdbus #" "$unit" > "$work/cmdbus.service"
said=$(systemd-analyze verify --man=no "$work/cmdbus.service" 2>&1) || {
  echo "$unit: systemd-analyze verify failed:" >&2
  echo "$said" >&2
  exit 1
}
if [ -n "$said" ]; then
  echo "$unit: systemd-analyze verify complains:" >&2
  echo "$said" >&2
  exit 1
fi
echo "$unit: systemd-analyze verify passes"

# The stacks' required secrets, as their users export them (any value does for a check).
export CMDBUS_BOOTSTRAP_KEY="cmdbus_$(printf '0%.0s' $(seq 64))" RABBITMQ_COOKIE=check
for stack in "docker-compose.yml" "docker-compose.yml docker-compose.cluster.yml"; do
  files=()
  for file in $stack; do files+=(-f "$file"); done
  docker-compose "${files[@]}" config > "$work/resolved.yml" 2> "$work/said" || {
    echo "$stack: docker-compose config failed:" >&2
    cat "$work/said" >&2
    exit 1
  }
  # docker-compose config resolves relative paths; what it does not check is that they exist.
  python3 - "$work/resolved.yml" "$stack" <<'PY'
import os, sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
missing = []
for name, service in (config.get("services") or {}).items():
    build = service.get("build")
    if isinstance(build, dict):
        context = build.get("context", ".")
        dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
        missing += [f"{name}: build file {dockerfile}"] if not os.path.exists(dockerfile) else []
    for volume in service.get("volumes") or []:
        source = volume.get("source", "") if isinstance(volume, dict) else volume.split(":")[0]
        kind = volume.get("type") if isinstance(volume, dict) else ("bind" if source.startswith("/") else "volume")
        if kind == "bind" and not os.path.exists(source):
            missing.append(f"{name}: mounted file {source}")
if missing:
    print(f"{sys.argv[2]}: missing " + "; ".join(missing), file=sys.stderr)
    sys.exit(1)
PY
  echo "$stack: docker-compose config passes"
done
