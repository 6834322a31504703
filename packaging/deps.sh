#!/bin/sh
# Install what valet needs to build (and, with --test, to run its test suite;
# with --bench, to build the benchmark's load generator; with
# --packages, to build and test the .deb and .rpm packages)
# on Debian/Ubuntu (apt) or Fedora/RHEL (dnf). Safe to run again: it only
# installs what is missing. Called by `make run`, `make test` and `make bench`
# when a dependency is not found; run it by hand with sudo when you are not root.
set -eu

want_test=0
want_bench=0
want_packages=0
for arg in "$@"; do
	case "$arg" in
	--test) want_test=1 ;;
	--bench) want_bench=1 ;; # libcurl, the load generator's, is in the build group
	--packages) want_packages=1 ;;
	-h|--help) echo "usage: $0 [--test] [--bench] [--packages]"; exit 0 ;;
	*) echo "deps.sh: unknown argument: $arg" >&2; exit 2 ;;
	esac
done

SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
		echo "deps.sh: not root and no sudo; install the packages listed in $0 by hand" >&2
		exit 1
	fi
fi

if command -v apt-get >/dev/null 2>&1; then
	# libsystemd: the daemon's journal fields and sd_notify (not the spawner's).
	pkgs="build-essential pkg-config libev-dev libjansson-dev libseccomp-dev libpq-dev \
libhttp-parser-dev libinih-dev libgnutls28-dev libsystemd-dev curl"
	# The valet CLI's (and the load generator's) HTTP client. libcurl's
	# GnuTLS flavour, GnuTLS being the project's TLS library; another
	# flavour already installed does as well (they conflict, apt would
	# replace it).
	pkg-config --exists libcurl 2>/dev/null || pkgs="$pkgs libcurl4-gnutls-dev"
	# The tests start a throwaway PostgreSQL server (tests/pg_tmp.sh) and read
	# the Grafana provisioning files (python3-yaml).
	# exec+net jobs' network (slirp4netns), and the tests' own test hosts
	# in network namespaces (iproute2); test certificates (openssl). The
	# fuzz harnesses (tests/fuzz): clang, and below its runtimes. The web
	# dashboard's test (tests/integration/test_ui.py): a headless browser. A
	# real Prometheus scrapes valetd in tests/integration/test_metrics.py,
	# and its promtool checks the text and the alert rules.
	[ "$want_test" = 1 ] && pkgs="$pkgs libcmocka-dev python3 python3-yaml procps postgresql \
postgresql-client slirp4netns iproute2 openssl clang chromium chromium-driver python3-selenium \
prometheus"
	# make bench: its durable PostgreSQL server, and bubblewrap, which it
	# compares exec tasks with (unshare is util-linux's, always there).
	[ "$want_bench" = 1 ] && pkgs="$pkgs postgresql postgresql-client bubblewrap"
	[ "$want_packages" = 1 ] && pkgs="$pkgs debhelper dpkg-dev fakeroot lintian rpm systemd git"
	updated=0
	install_missing() {
		missing=""
		for p in "$@"; do
			dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || \
				missing="$missing $p"
		done
		[ -z "$missing" ] && return 0
		echo "deps.sh: installing:$missing" >&2
		[ "$updated" = 1 ] || $SUDO apt-get update -qq
		updated=1
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
			$missing
	}
	install_missing $pkgs
	# libFuzzer and the sanitizer runtimes, which clang only recommends:
	# libclang-rt-N-dev for clang N (Debian 12: libclang-rt-14-dev). Where
	# there is no such package, clang's own packages hold them.
	if [ "$want_test" = 1 ] && command -v clang >/dev/null 2>&1; then
		rt="libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
		if ! apt-cache show "$rt" >/dev/null 2>&1 && [ "$updated" = 0 ]; then
			$SUDO apt-get update -qq
			updated=1
		fi
		if apt-cache show "$rt" >/dev/null 2>&1; then
			install_missing "$rt"
		fi
	fi
elif command -v dnf >/dev/null 2>&1; then
	pkgs="gcc make pkgconf-pkg-config libev-devel jansson-devel libseccomp-devel libpq-devel \
http-parser-devel inih-devel gnutls-devel libcurl-devel systemd-devel curl"
	[ "$want_test" = 1 ] && pkgs="$pkgs libcmocka-devel python3 python3-pyyaml procps-ng \
postgresql-server postgresql slirp4netns iproute openssl clang compiler-rt chromium chromedriver \
python3-selenium"
	[ "$want_bench" = 1 ] && pkgs="$pkgs postgresql-server postgresql bubblewrap"
	[ "$want_packages" = 1 ] && pkgs="$pkgs rpm-build systemd-rpm-macros systemd git"
	$SUDO dnf install -y $pkgs
else
	echo "deps.sh: no apt-get or dnf; install by hand: a C compiler, make, pkg-config," >&2
	echo "  libev, jansson, libseccomp, libpq, http-parser, GnuTLS, inih, libcurl, libsystemd" >&2
	echo "  (and cmocka, python3 with yaml, openssl, the PostgreSQL server and client, clang and" >&2
	echo "  its libFuzzer runtime, chromium, its WebDriver and python3-selenium to test)" >&2
	exit 1
fi
