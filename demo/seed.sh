#!/usr/bin/env bash
# The "DeploymentFailed - InaccessibleImage" article, runnable on this machine (`make demo`).
#
# A Premium registry whose firewall denies everyone but this machine, with the trusted-services
# bypass off; a small web image pushed to it (built from busybox, no Docker); a service principal
# with AcrPull; Azure's multi-container group template deployed with the service principal's
# credentials -> DeploymentFailed / InaccessibleImage, exactly as Azure reports it; `moorage
# diagnose` names the firewall; the documented fix (a user-assigned identity with AcrPull, and
# "allow trusted services") -> redeploy -> the group runs and answers on its port. A second
# branch shows the other classic cause: a wrong password. Everything runs in a temporary data
# directory with its own server, and is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "$(id -u)" != 0 ]; then
  echo "demo: container groups run with runc, which needs root; run 'sudo make demo'" >&2
  exit 2
fi
scripts/bootstrap --dev >/dev/null
PY="$ROOT/.venv/bin/python"
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || { echo "demo: $BUSYBOX (Debian package busybox-static) is missing" >&2; exit 2; }

WORK=$(mktemp -d /tmp/moorage-demo.XXXXXX)
HOME_DIR="$WORK/home"
SERVER_PID=""
M() { "$PY" -m moorage "$@" --home "$HOME_DIR"; }
# Read one field from JSON on stdin: json_get '.properties.loginServer'
json_get() {
  "$PY" -c 'import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].strip(".").split("."):
    value = value[int(key)] if key.isdigit() else value[key]
print(value if isinstance(value, str) else json.dumps(value))' "$1"
}

cleanup() {
  local status=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    M group delete --name demo-rg --yes >/dev/null 2>&1 || true
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT

STEP=0
step() {
  STEP=$((STEP + 1))
  printf '\n\033[1m==> %d. %s\033[0m\n' "$STEP" "$1"
  STEP_STARTED=$(date +%s.%N)
}
done_step() {
  printf '    (%.1f s)\n' "$(echo "$(date +%s.%N) - $STEP_STARTED" | bc)"
}

step "Start moorage (data directory $HOME_DIR)"
mkdir -p "$HOME_DIR"
MOORAGE_HOME="$HOME_DIR" MOORAGE_PORT=0 "$PY" -m moorage serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  [ -f "$HOME_DIR/connection.json" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
echo "    serving on $(json_get .endpoint <"$HOME_DIR/connection.json")"
done_step

step "Create a resource group and a Premium registry: firewall Deny, trusted services off"
M group create --name demo-rg --location westus >/dev/null
ACR="demo$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
M acr create --resource-group demo-rg --name "$ACR" --sku Premium --default-action Deny \
  --allow-trusted-services false >"$WORK/acr.json"
LOGIN=$(json_get .properties.loginServer <"$WORK/acr.json")
ACR_ID=$(json_get .id <"$WORK/acr.json")
# This machine may push; the Container Instances service (the platform) is not on the list.
M acr network-rule add --name "$ACR" --ip-address 127.0.0.1 >/dev/null
echo "    registry $ACR at $LOGIN; allowed: 127.0.0.1; networkRuleBypassOptions: None"
done_step

step "Build the demo web image from busybox (no Docker) and push app + sidecar"
mkdir -p "$WORK/image/bin" "$WORK/image/www"
cp "$BUSYBOX" "$WORK/image/bin/busybox"
ln -s busybox "$WORK/image/bin/sh"
echo "<h1>Welcome to Azure Container Instances!</h1>" >"$WORK/image/www/index.html"
M image push "$WORK/image" "$LOGIN/aci-helloworld:v1" --entrypoint '["/bin/busybox", "httpd", "-f", "-h", "/www"]' \
  --output json >/dev/null 2>"$WORK/push.log"
M image push "$WORK/image" "$LOGIN/aci-tutorial-sidecar:v1" --cmd '["/bin/sh"]' --output json >/dev/null 2>>"$WORK/push.log"
echo "    pushed $LOGIN/aci-helloworld:v1 and $LOGIN/aci-tutorial-sidecar:v1"
done_step

step "Create a service principal with AcrPull on the registry"
M sp create-for-rbac --name demo-puller --role AcrPull --scopes "$ACR_ID" >"$WORK/sp.json"
APP_ID=$(json_get .appId <"$WORK/sp.json")
SECRET=$(json_get .password <"$WORK/sp.json")
echo "    appId $APP_ID"
done_step

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TEMPLATE="$ROOT/demo/aci-multicontainer.json"

step "Deploy the multi-container template with the service principal's credentials"
if M deployment group create --resource-group demo-rg --name demo-sp --template-file "$TEMPLATE" \
  --parameters "registry=$LOGIN" --parameters "port=$PORT" --parameters "registryUsername=$APP_ID" \
  --parameters "registryPassword=$SECRET" \
  >"$WORK/sp-deploy.out" 2>"$WORK/sp-deploy.err"; then
  echo "demo: the deployment should have failed" >&2
  exit 1
fi
grep -q DeploymentFailed "$WORK/sp-deploy.err" || { cat "$WORK/sp-deploy.err" >&2; exit 1; }
echo "    failed, as on Azure. The deployment's error (what Azure shows):"
M deployment group show --resource-group demo-rg --name demo-sp | "$PY" -c 'import json, sys
error = json.load(sys.stdin)["properties"]["error"]
def azure(e):  # Azure'"'"'s envelope carries code, message and details; moorage adds additionalInfo
    out = {"code": e["code"], "message": e["message"]}
    if e.get("details"):
        out["details"] = [azure(d) for d in e["details"]]
    return out
print(json.dumps({"status": "Failed", "error": azure(error)}, indent=2))' | sed 's/^/    /'
echo "    Failed deployment operations:"
M deployment operation group list --resource-group demo-rg --name demo-sp --output table | sed 's/^/    /'
done_step

step "moorage diagnose: why can the platform not pull?"
M diagnose deployment demo-sp --resource-group demo-rg | sed 's/^/    /' || [ $? -eq 3 ]  # 3: a cause was found
done_step

step "Apply the documented fix: a user-assigned identity with AcrPull, and allow trusted services"
M identity create --resource-group demo-rg --name demo-identity >"$WORK/identity.json"
PRINCIPAL=$(json_get .properties.principalId <"$WORK/identity.json")
M role assignment create --role AcrPull --scope "$ACR_ID" --assignee-object-id "$PRINCIPAL" >/dev/null
M acr update --name "$ACR" --allow-trusted-services true >/dev/null
echo "    identity demo-identity (principal $PRINCIPAL) has AcrPull; networkRuleBypassOptions: AzureServices"
done_step

step "Redeploy with the managed identity"
M deployment group create --resource-group demo-rg --name demo-identity --template-file "$TEMPLATE" \
  --parameters "registry=$LOGIN" --parameters "port=$PORT" --parameters "identityName=demo-identity" --output table | sed 's/^/    /'
done_step

step "The group runs: the app answers on its published port, the sidecar reaches it over localhost"
for _ in $(seq 1 100); do
  if PAGE=$(curl -fsS "http://127.0.0.1:$PORT/" 2>/dev/null); then break; fi
  sleep 0.2
done
echo "    curl http://127.0.0.1:$PORT/ -> $PAGE"
sleep 2
echo "    sidecar logs:"
M container logs --resource-group demo-rg --name mycontainergroup --container-name aci-tutorial-sidecar --tail 3 |
  sed 's/^/      /'
[ -n "${PAGE:-}" ] || { echo "demo: the app did not answer" >&2; exit 1; }
done_step

step "The other classic cause: a wrong password (a registry without firewall)"
OPEN="open$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
M acr create --resource-group demo-rg --name "$OPEN" --sku Basic --admin-enabled true >"$WORK/open.json"
OPEN_LOGIN=$(json_get .properties.loginServer <"$WORK/open.json")
M image push "$WORK/image" "$OPEN_LOGIN/aci-helloworld:v1" --output json >/dev/null 2>>"$WORK/push.log"
M image push "$WORK/image" "$OPEN_LOGIN/aci-tutorial-sidecar:v1" --output json >/dev/null 2>>"$WORK/push.log"
if M deployment group create --resource-group demo-rg --name demo-wrong --template-file "$TEMPLATE" \
  --parameters "containerGroupName=wrong-password" --parameters "registry=$OPEN_LOGIN" \
  --parameters "port=$PORT" --parameters "registryUsername=$OPEN" \
  --parameters "registryPassword=not-the-password" >/dev/null 2>"$WORK/wrong.err"; then
  echo "demo: the deployment should have failed" >&2
  exit 1
fi
sed 's/^/    /' "$WORK/wrong.err"
M diagnose deployment demo-wrong --resource-group demo-rg | sed 's/^/    /' || [ $? -eq 3 ]  # 3: a cause was found
done_step

step "Clean up"
M group delete --name demo-rg --yes >/dev/null
done_step
printf '\nDemo complete.\n'
