# futures: concurrent.futures for Lua 5.4.  `make help` lists the targets.
LUA        ?= lua5.4
LUA_INC    ?= /usr/include/lua5.4
PREFIX     ?= /usr/local
DESTDIR    ?=
LUA_LIBDIR  = $(PREFIX)/lib/lua/5.4
LUA_SHARE   = $(PREFIX)/share/lua/5.4
INCDIR      = $(PREFIX)/include

CC         ?= cc
OPT        ?= -O2 -g
WARN        = -std=c11 -Wall -Wextra -Wshadow -Wmissing-prototypes -Wno-unused-parameter
CFLAGS_ALL  = $(OPT) $(WARN) -D_GNU_SOURCE -fPIC -fvisibility=hidden -I$(LUA_INC) -pthread $(SAN) $(CFLAGS)
LDFLAGS_ALL = -pthread $(SAN) $(LDFLAGS)

B        ?= build
SRCS      = $(wildcard csrc/*.c)
OBJS      = $(SRCS:csrc/%.c=$(B)/obj/%.o) $(B)/obj/front.o
CORE      = $(B)/futures/core.so
WORKER    = $(B)/futures/worker
STATICLIB = $(B)/libfutures.a
BUSTED    = $(LUA) /usr/bin/busted
TESTENV   = FUTURES_TEST_LUA=$(LUA) LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;' LUA_CPATH='$(B)/?.so;;'

.PHONY: all deps demo test layers install uninstall bench sanitize tsan valgrind fuzz clean help
EMBED     = $(B)/embed/host $(B)/embed/worker

all: $(CORE) $(WORKER) $(STATICLIB) $(EMBED)

$(B)/obj/%.o: csrc/%.c csrc/*.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# The Lua front, compiled in (see csrc/embed.c).
$(B)/gen/front.c: lua/futures/init.lua csrc/tools/bin2c.lua
	@mkdir -p $(dir $@)
	$(LUA) csrc/tools/bin2c.lua futures_front $< $@

$(B)/obj/front.o: $(B)/gen/front.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(CORE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $(OBJS) $(LDFLAGS_ALL)

$(STATICLIB): $(OBJS)
	@rm -f $@
	ar rcs $@ $(OBJS)

# The process worker is a program of its own: it links Lua, never inherits the
# caller's state, and is found next to core.so at run time.  Linked like
# Debian's lua5.4: Lua built in (non-PIC code, a third faster than the shared
# library) and its API exported (-E) to the C modules that tasks require.
$(WORKER): csrc/worker/main.c $(STATICLIB)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(STATICLIB) -Wl,-E -Wl,-Bstatic -llua5.4 -Wl,-Bdynamic -lm -ldl $(LDFLAGS_ALL)

# The embedding example: a host that links Lua and libfutures.a statically.
$(B)/embed/%: examples/embed/%.c examples/embed/hostlib.h $(STATICLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Icsrc -Wno-unused-function -o $@ $< $(STATICLIB) -Wl,-Bstatic -llua5.4 -Wl,-Bdynamic -lm -ldl $(LDFLAGS_ALL)

deps:
	@sh .ci/deps.sh

demo: deps all
	$(TESTENV) $(LUA) examples/primes.lua

# Debian packages the specs need beyond the build's (.ci/deps.sh installs
# them): Open MPI for spec/mpi_spec.lua, luv and cqueues for the event
# loops the coroutine examples and specs drive.  Add a name to add one.
TEST_DEPS = openmpi-bin libopenmpi-dev lua-luv lua-cqueues
test: export EXTRA_DEPS := $(TEST_DEPS)
test: deps all layers mpi-if-found
	$(TESTENV) $(BUSTED) $(BUSTED_ARGS)

# Every dependency of csrc/ points down, and no C file grows past 600 lines.
layers:
	$(LUA) csrc/tools/check_layers.lua csrc

# luv's thread pool is one of the baselines (Debian's lua-luv).
bench: export EXTRA_DEPS := lua-luv
bench: deps all
	$(TESTENV) $(LUA) bench/run.lua

install: all
	install -d $(DESTDIR)$(LUA_LIBDIR)/futures $(DESTDIR)$(LUA_SHARE)/futures $(DESTDIR)$(INCDIR) $(DESTDIR)$(PREFIX)/lib
	install -m 755 $(CORE) $(WORKER) $(DESTDIR)$(LUA_LIBDIR)/futures/
	install -m 644 lua/futures/*.lua $(DESTDIR)$(LUA_SHARE)/futures/
	install -m 644 csrc/futures.h $(DESTDIR)$(INCDIR)/futures.h
	install -m 644 $(STATICLIB) $(DESTDIR)$(PREFIX)/lib/libfutures.a

uninstall:
	rm -rf $(DESTDIR)$(LUA_LIBDIR)/futures $(DESTDIR)$(LUA_SHARE)/futures
	rm -f $(DESTDIR)$(INCDIR)/futures.h $(DESTDIR)$(PREFIX)/lib/libfutures.a

# Sanitizer builds go to their own directories and run the specs with a Lua
# interpreter built with the same flags (spec/tools/lua.c); specs start that
# one for child processes too (FUTURES_TEST_LUA), so nothing is preloaded.
ASAN_SAN = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
TSAN_SAN = -fsanitize=thread
SANLUA    = $(B)/lua

$(SANLUA): spec/tools/lua.c
	$(CC) $(OPT) -I$(LUA_INC) $(SAN) -o $@ $< -llua5.4 -lm -ldl -pthread

sanitize: deps
	$(MAKE) --no-print-directory B=build-asan SAN='$(ASAN_SAN)' OPT='-O1 -g' all build-asan/lua
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/.ci/lsan.supp \
	$(MAKE) --no-print-directory B=build-asan TEST_LUA=build-asan/lua test-only

tsan: deps
	$(MAKE) --no-print-directory B=build-tsan SAN='$(TSAN_SAN)' OPT='-O1 -g' all build-tsan/lua
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/.ci/tsan.supp" \
	$(MAKE) --no-print-directory B=build-tsan TEST_LUA=build-tsan/lua test-only

valgrind: export EXTRA_DEPS := valgrind
valgrind: deps all
	$(TESTENV) FUTURES_VALGRIND=1 valgrind -q --error-exitcode=99 --leak-check=full \
	  --errors-for-leak-kinds=definite --show-leak-kinds=definite \
	  --child-silent-after-fork=yes --keep-debuginfo=yes \
	  $(LUA) /usr/bin/busted --exclude-tags=slow,novalgrind $(BUSTED_ARGS)

TEST_LUA ?= $(LUA)
test-only:
	$(TESTENV) FUTURES_TEST_LUA=$(TEST_LUA) $(TEST_LUA) /usr/bin/busted $(BUSTED_ARGS)

clean:
	rm -rf build build-asan build-tsan build-fuzz

help:
	@echo "targets: all demo test layers install uninstall bench sanitize tsan valgrind fuzz clean"

# libFuzzer over the decoder (needs clang): fuzz/decode_fuzz.c with the seeds
# in fuzz/corpus/ (remade by `make fuzz-seeds`); new inputs go to
# fuzz/corpus-run/, a crash to build-fuzz/crash-*.  Fails on any finding.
# Blob code is real lua_dump output only (see fuzz/fuzz_input.h).
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_B        = build-fuzz
FUZZ_FLAGS    = -O1 -g $(WARN) -D_GNU_SOURCE -I$(LUA_INC) -iquote csrc -pthread \
                -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_OBJS     = $(SRCS:csrc/%.c=$(FUZZ_B)/obj/%.o)
FUZZ_LIB      = $(FUZZ_B)/libfutures-fuzz.a
FUZZ_LIBS     = -llua5.4 -lm -ldl -pthread
.PHONY: fuzz-seeds

$(FUZZ_B)/obj/%.o: csrc/%.c csrc/*.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@

# An archive: the linker takes only what the codec needs.
$(FUZZ_LIB): $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $(FUZZ_OBJS)

$(FUZZ_B)/decode_fuzz: fuzz/decode_fuzz.c fuzz/fuzz_input.h $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_LIB) $(FUZZ_LIBS)

$(FUZZ_B)/gen_seeds: fuzz/gen_seeds.c fuzz/fuzz_input.h $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link,address,undefined -o $@ $< $(FUZZ_LIB) $(FUZZ_LIBS)

fuzz-seeds: $(FUZZ_B)/gen_seeds
	rm -rf fuzz/corpus && mkdir -p fuzz/corpus
	ASAN_OPTIONS=detect_leaks=1 $(FUZZ_B)/gen_seeds fuzz/corpus

fuzz: $(FUZZ_B)/decode_fuzz
	@mkdir -p fuzz/corpus-run
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	$(FUZZ_B)/decode_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_B)/ \
	  fuzz/corpus-run fuzz/corpus </dev/null

# ------------------------------------------------------------ futures.mpi
# MPIPoolExecutor (csrc/mpi/): build/futures/mpi.so, made by `all` where
# mpicc is found, never in the sanitizer builds (their specs skip it).  It
# links no copy of the core: it calls the loaded core.so through the
# core's backend table (csrc/backend.h).  `make mpi` builds it or fails;
# `make bench-mpi` compares it with mpi4py.futures.
.PHONY: mpi mpi-if-found install-mpi bench-mpi
MPICC    ?= mpicc
MPI_SRCS  = $(wildcard csrc/mpi/*.c)
MPI_OBJS  = $(MPI_SRCS:csrc/mpi/%.c=$(B)/obj/mpi/%.o) $(B)/obj/mpi/front.o
MPIMOD    = $(B)/futures/mpi.so
MPIEXEC   = OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpiexec --oversubscribe
HAVE_MPI := $(if $(SAN),,$(shell command -v $(MPICC) 2>/dev/null))
ifneq ($(HAVE_MPI),)
all: $(MPIMOD)
endif

mpi: $(MPIMOD)

# After deps (which may just have installed mpicc): decided when it runs.
mpi-if-found: deps all
	@if [ -z "$(SAN)" ] && command -v $(MPICC) >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(MPIMOD); fi

$(B)/obj/mpi/%.o: csrc/mpi/%.c csrc/mpi/*.h csrc/*.h
	@mkdir -p $(dir $@)
	$(MPICC) $(CFLAGS_ALL) -Icsrc -c $< -o $@

$(B)/gen/mpi_front.c: csrc/mpi/mpi.lua csrc/tools/bin2c.lua
	@mkdir -p $(dir $@)
	$(LUA) csrc/tools/bin2c.lua futures_mpi_front $< $@

$(B)/obj/mpi/front.o: $(B)/gen/mpi_front.c
	@mkdir -p $(dir $@)
	$(MPICC) $(CFLAGS_ALL) -c $< -o $@

$(MPIMOD): $(MPI_OBJS)
	@mkdir -p $(dir $@)
	$(MPICC) -shared -o $@ $(MPI_OBJS) -ldl $(LDFLAGS_ALL)

install: install-mpi
install-mpi: all
	@if [ -f $(MPIMOD) ]; then \
	  install -d $(DESTDIR)$(LUA_LIBDIR)/futures && \
	  install -m 755 $(MPIMOD) $(DESTDIR)$(LUA_LIBDIR)/futures/; fi

# mpi4py.futures is Debian's python3-mpi4py, for /usr/bin/python3.
bench-mpi: export EXTRA_DEPS := $(TEST_DEPS) python3-mpi4py
bench-mpi: deps all mpi-if-found
	$(TESTENV) $(LUA) bench/mpi_bench.lua
