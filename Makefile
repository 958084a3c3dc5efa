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
OBJS      = $(SRCS:csrc/%.c=$(B)/obj/%.o)
CORE      = $(B)/futures/core.so
WORKER    = $(B)/futures/worker
STATICLIB = $(B)/libfutures.a
BUSTED    = $(LUA) /usr/bin/busted
TESTENV   = LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;' LUA_CPATH='$(B)/?.so;;'

.PHONY: all deps demo test install uninstall bench sanitize tsan valgrind fuzz clean help
all: $(CORE) $(WORKER) $(STATICLIB)

$(B)/obj/%.o: csrc/%.c csrc/*.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(CORE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $(OBJS) $(LDFLAGS_ALL)

$(STATICLIB): $(OBJS)
	@rm -f $@
	ar rcs $@ $(OBJS)

# The process worker is a program of its own: it links Lua, never inherits the
# caller's state, and is found next to core.so at run time.
$(WORKER): csrc/worker/main.c $(STATICLIB)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(STATICLIB) -llua5.4 -lm -ldl $(LDFLAGS_ALL)

deps:
	@sh .ci/deps.sh

demo: deps all
	$(TESTENV) $(LUA) examples/primes.lua

test: deps all
	$(TESTENV) $(BUSTED) $(BUSTED_ARGS)

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

# Sanitizer builds go to their own directories; the module is loaded into the
# stock lua5.4, so the runtime is preloaded.
ASAN_SAN = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
sanitize: deps
	$(MAKE) B=build-asan SAN='$(ASAN_SAN)' OPT='-O1 -g' all
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	$(MAKE) --no-print-directory B=build-asan test-only

tsan: deps
	$(MAKE) B=build-tsan SAN='-fsanitize=thread' OPT='-O1 -g' all
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/.ci/tsan.supp" \
	LD_PRELOAD="$$($(CC) -print-file-name=libtsan.so)" \
	$(MAKE) --no-print-directory B=build-tsan test-only

valgrind: deps all
	$(TESTENV) valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	  --trace-children=no $(BUSTED) --exclude-tags=slow,novalgrind $(BUSTED_ARGS)

test-only:
	$(TESTENV) $(BUSTED) $(BUSTED_ARGS)

clean:
	rm -rf build build-asan build-tsan build-fuzz

help:
	@echo "targets: all demo test install uninstall bench sanitize tsan valgrind fuzz clean"
