# valet - GNU Makefile. No configure step: dependencies come from pkg-config
# (libev has no .pc file on Debian, so it falls back to -lev). Distro
# CFLAGS/LDFLAGS from the environment are kept; project flags are appended.
#
#   make            build valetd, libvalet.{a,so}, the demo plugin
#   make run        build and run valetd on $(LISTEN) with the memory store
#   make test       unit + integration tests (installs missing packages)
#   make asan       the whole suite under ASan+UBSan
#   make bench      throughput/latency benchmark
#   make install    DESTDIR=... PREFIX=/usr/local
#   make deb/rpm    binary packages from `make dist`; make test-packages (root)

VERSION := 0.1.0
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
SBINDIR ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
LISTEN ?= 127.0.0.1:8080
BUILD ?= build
CC ?= cc

PKGS := jansson libseccomp libmicrohttpd inih libpq
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libmicrohttpd is dlopen()ed at run time, after the spawner is forked, so
# that job children do not inherit its ~50 mappings (see api/mhd.h).
PKG_LIBS := $(shell pkg-config --libs $(filter-out libmicrohttpd,$(PKGS)) 2>/dev/null)
MHD_SONAME := $(shell objdump -p $$(pkg-config --variable=libdir libmicrohttpd 2>/dev/null)/libmicrohttpd.so 2>/dev/null | awk '/SONAME/ {print $$2}')
ifeq ($(MHD_SONAME),)
MHD_SONAME := libmicrohttpd.so.12
endif
EV_CFLAGS := $(shell pkg-config --cflags libev 2>/dev/null)
EV_LIBS := $(shell pkg-config --libs libev 2>/dev/null || echo -lev)

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes -Wformat=2
ifeq ($(WERROR),1)
WARN += -Werror
endif
override CFLAGS += -std=gnu11 -fPIC -pthread $(WARN) -D_GNU_SOURCE \
	-DVALET_VERSION='"$(VERSION)"' -DVALET_MHD_SONAME='"$(MHD_SONAME)"' \
	-Iinclude $(PKG_CFLAGS) $(EV_CFLAGS)
override LDLIBS += $(PKG_LIBS) $(EV_LIBS) -ldl -lm -pthread
# Bind every symbol at startup (and full RELRO): job children are forked
# from a process that has then resolved everything, instead of each child
# paying for lazy PLT resolution (and dirtying its GOT) again.
override LDFLAGS += -Wl,-z,relro,-z,now

ifeq ($(SANITIZER),address)
override CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
override LDFLAGS += -fsanitize=address,undefined
endif

LIB_SRCS := $(sort $(wildcard supervisor/*.c sandbox/*.c api/*.c storage/*.c))
LIB_SRCS := $(filter-out supervisor/valetd.c,$(LIB_SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
HDRS := $(wildcard include/*.h supervisor/*.h sandbox/*.h api/*.h storage/*.h)

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
HOSTILE_SO := $(BUILD)/tests/hostile.so

all: $(BUILD)/valetd $(BUILD)/libvalet.a $(BUILD)/libvalet.so $(BUILD)/tasks/demo.so \
	$(BUILD)/valet.pc

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/libvalet.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/libvalet.so: $(LIB_OBJS)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libvalet.so.0 -o $@ $^ $(LDLIBS)

# valetd exports its symbols so that task plugins resolve valet_register().
$(BUILD)/valetd: $(BUILD)/supervisor/valetd.o $(BUILD)/libvalet.a
	$(CC) $(LDFLAGS) -rdynamic -o $@ $< -Wl,--whole-archive $(BUILD)/libvalet.a \
		-Wl,--no-whole-archive $(LDLIBS)

$(BUILD)/tasks/demo.so: supervisor/demo/demo_tasks.c include/valet.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -shared -o $@ $< $(LDFLAGS)

$(BUILD)/valet.pc: packaging/valet.pc.in
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|; s|@VERSION@|$(VERSION)|' $< > $@

# --- dependencies ------------------------------------------------------------
deps:
	@pkg-config --exists $(PKGS) && test -f /usr/include/ev.h || packaging/deps.sh

deps-test:
	@pkg-config --exists $(PKGS) cmocka && test -f /usr/include/ev.h && \
		command -v python3 >/dev/null || packaging/deps.sh --test

# --- run ---------------------------------------------------------------------
run: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/valetd -c packaging/valetd-dev.conf -l $(LISTEN)

# --- tests -------------------------------------------------------------------
$(BUILD)/tests/test_%: tests/unit/test_%.c $(BUILD)/libvalet.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) -rdynamic -Wl,--whole-archive \
		$(BUILD)/libvalet.a -Wl,--no-whole-archive $(LDLIBS) $(shell pkg-config --libs cmocka)

$(HOSTILE_SO): $(wildcard tests/tasks/*.c) include/valet.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -shared -o $@ $(wildcard tests/tasks/*.c) $(LDFLAGS)

test-build: all $(UNIT_BINS) $(HOSTILE_SO)

check: test
test: deps-test
	@$(MAKE) --no-print-directory WERROR=1 test-build
	BUILD=$(BUILD) tests/run_tests.sh

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZER=address test

bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench/loadgen $(BUILD)/bench/forkloop
	BUILD=$(BUILD) tests/bench/bench.sh

$(BUILD)/bench/%: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) $(LDLIBS)

# --- install -----------------------------------------------------------------
# Plugins are private, so packages may put them outside a multiarch LIBDIR
# (Debian: /usr/lib/valet/tasks); the installed config's plugin_dir points there.
TASKDIR ?= $(LIBDIR)/valet/tasks
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d

install: all install-man
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(TASKDIR) $(DESTDIR)$(SYSCONFDIR)/valet $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR)
	install -m 755 $(BUILD)/valetd $(DESTDIR)$(SBINDIR)/valetd
	install -m 644 $(BUILD)/libvalet.a $(DESTDIR)$(LIBDIR)/libvalet.a
	install -m 755 $(BUILD)/libvalet.so $(DESTDIR)$(LIBDIR)/libvalet.so.0
	ln -sf libvalet.so.0 $(DESTDIR)$(LIBDIR)/libvalet.so
	install -m 644 include/valet.h $(DESTDIR)$(INCLUDEDIR)/valet.h
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|; s|@VERSION@|$(VERSION)|' \
		packaging/valet.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/valet.pc
	install -m 755 $(BUILD)/tasks/demo.so $(DESTDIR)$(TASKDIR)/demo.so
	install -m 644 supervisor/demo/wordcount.py $(DESTDIR)$(TASKDIR)/wordcount.py
	sed -e 's|/usr/lib/valet/tasks|$(TASKDIR)|g; s|^#plugin_dir =.*|&\nplugin_dir = $(TASKDIR)|' \
		packaging/valetd.conf > $(DESTDIR)$(SYSCONFDIR)/valet/valetd.conf
	chmod 640 $(DESTDIR)$(SYSCONFDIR)/valet/valetd.conf
	sed -e 's|/usr/sbin/valetd|$(SBINDIR)/valetd|g; s|/etc/valet/|$(SYSCONFDIR)/valet/|g' \
		packaging/valetd.service > $(DESTDIR)$(UNITDIR)/valetd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/valetd.service
	install -m 644 packaging/valet.sysusers $(DESTDIR)$(SYSUSERSDIR)/valet.conf

format:
	clang-format -i $(LIB_SRCS) supervisor/valetd.c $(HDRS) $(UNIT_SRCS)

lint:
	cppcheck --quiet --enable=warning,performance,portability --inline-suppr \
		--suppress=missingIncludeSystem -Iinclude $(LIB_SRCS)

clean:
	rm -rf build

.PHONY: all deps deps-test run test check asan bench install format lint clean test-build

# --- packages ----------------------------------------------------------------
# `make dist` makes $(BUILD)/valet-$(VERSION).tar.gz from the files git knows
# (tracked, plus untracked ones that are not ignored, so new files count
# before they are committed) as they are in the working tree, and a VERSION
# file. `make deb` and `make rpm` build binary packages from that tarball, so
# what the packages contain is what a clean checkout contains. `make
# test-packages` (root) installs the .debs, runs them, purges them and checks
# the .rpm (packaging/test-packages.sh). packaging/deps.sh --packages installs
# the tools. Files are written to $(BUILD)/: the tarball, *.deb, *.rpm. The
# package builds run with a clean make environment (their own build/ tree).
DIST := $(BUILD)/valet-$(VERSION).tar.gz
# Debian's rpmbuild cannot see BuildRequires installed with apt.
RPMBUILD_FLAGS ?= $(if $(wildcard /etc/debian_version),--nodeps)

dist:
	@command -v git >/dev/null && git rev-parse --is-inside-work-tree >/dev/null 2>&1 || \
		{ echo "make dist: needs git and a git checkout" >&2; exit 1; }
	@mkdir -p $(BUILD)/dist
	echo $(VERSION) > $(BUILD)/dist/VERSION
	git ls-files --cached --others --exclude-standard | sort -u | \
		while IFS= read -r f; do if [ -e "$$f" ] || [ -L "$$f" ]; then echo "$$f"; fi; done \
		> $(BUILD)/dist/files
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$$(git log -1 --format=%ct) \
		--transform 's|^|valet-$(VERSION)/|' -cf - -T $(BUILD)/dist/files -C $(BUILD)/dist VERSION \
		| gzip -n9 > $(DIST).tmp
	mv $(DIST).tmp $(DIST)
	@echo "wrote $(DIST)"

deb: dist
	@v=$$(dpkg-parsechangelog -l packaging/debian/changelog -S Version); \
	test "$${v%-*}" = "$(VERSION)" || { echo "make deb: packaging/debian/changelog is at \
$$v, the Makefile at $(VERSION): add a changelog entry (dch -v $(VERSION)-1)" >&2; exit 1; }
	rm -rf $(BUILD)/deb
	mkdir -p $(BUILD)/deb
	cp $(DIST) $(BUILD)/deb/valet_$(VERSION).orig.tar.gz
	tar -xzf $(DIST) -C $(BUILD)/deb
	cp -R $(BUILD)/deb/valet-$(VERSION)/packaging/debian $(BUILD)/deb/valet-$(VERSION)/debian
	cd $(BUILD)/deb/valet-$(VERSION) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD \
		dpkg-buildpackage -us -uc -b -jauto
	rm -f $(BUILD)/*.deb
	cp $(BUILD)/deb/*.deb $(BUILD)/
	@ls -1 $(BUILD)/*.deb

rpm: dist
	@v=$$(sed -n 's/^Version:[[:space:]]*//p' packaging/rpm/valet.spec); \
	test "$$v" = "$(VERSION)" || { echo "make rpm: packaging/rpm/valet.spec is at $$v, \
the Makefile at $(VERSION)" >&2; exit 1; }
	rm -rf $(BUILD)/rpm
	mkdir -p $(BUILD)/rpm/SOURCES
	cp $(DIST) packaging/valet.sysusers $(BUILD)/rpm/SOURCES/
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD rpmbuild -bb $(RPMBUILD_FLAGS) \
		--define "_topdir $(abspath $(BUILD)/rpm)" packaging/rpm/valet.spec
	rm -f $(BUILD)/*.rpm
	cp $(BUILD)/rpm/RPMS/*/*.rpm $(BUILD)/
	@ls -1 $(BUILD)/*.rpm

test-packages:
	BUILD=$(BUILD) packaging/test-packages.sh

install-man:
	install -d $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	for m in man8/valetd.8 man5/valetd.conf.5; do \
		sed -e 's|/usr/lib/valet/tasks|$(TASKDIR)|g; s|/usr/sbin/valetd|$(SBINDIR)/valetd|g' \
			-e 's|/etc/valet/|$(SYSCONFDIR)/valet/|g; s|@VERSION@|$(VERSION)|g' \
			packaging/man/$${m#*/} \
			> $(DESTDIR)$(MANDIR)/$$m && chmod 644 $(DESTDIR)$(MANDIR)/$$m || exit 1; \
	done

.PHONY: dist deb rpm test-packages install-man
