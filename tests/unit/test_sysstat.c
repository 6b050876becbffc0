/* test_sysstat.c - the /proc readers of common/sysstat.c on fixture text: per-core CPU ticks
 * (offline cores, the aggregate line, a core beyond the table), load average, swap, disks
 * (partitions, loop/dm/md devices and nvme/mmcblk names left out), network (lo left out,
 * header lines), a process's stat (a name with spaces and parentheses), the holder of a
 * flock in /proc/locks (waiters and POSIX locks ignored); and this very process found among
 * the bitnet processes when it is named bitnet. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/sysstat.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void test_cpus(void **state)
{
    (void)state;
    const char *text = "cpu  100 0 50 800 50 0 0 0 0 0\n"
                       "cpu0 60 0 30 400 10 0 0 0 0 0\n"
                       "cpu2 40 0 20 400 40 0 0 0\n" /* cpu1 offline; 8 fields only */
                       "cpu9 1 1 1 1\n"              /* beyond max: skipped */
                       "cpux 1 2 3 4\n"
                       "intr 123 4 5\n"
                       "ctxt 999\n";
    bn_sys_cpu c[4];
    assert_int_equal(bn_sys_parse_cpus(text, c, 4), 3);
    assert_true(c[0].total == 500 && c[0].idle == 410);
    assert_true(c[1].total == 0 && c[1].idle == 0);
    assert_true(c[2].total == 500 && c[2].idle == 440);
    assert_int_equal(bn_sys_parse_cpus("cpu  1 2 3 4\nintr 5\n", c, 4), -1);
    assert_int_equal(bn_sys_parse_cpus("", c, 4), -1);
}

static void test_loadavg_swap(void **state)
{
    (void)state;
    double l[3];
    assert_int_equal(bn_sys_parse_loadavg("0.52 1.25 3.00 2/345 6789\n", l), 0);
    assert_true(l[0] == 0.52 && l[1] == 1.25 && l[2] == 3.0);
    assert_int_equal(bn_sys_parse_loadavg("0.52 x\n", l), -1);
    const char *mi = "MemTotal:       24576000 kB\n"
                     "SwapCached:          12 kB\n"
                     "SwapTotal:       2097148 kB\n"
                     "SwapFree:        1048576 kB\n";
    unsigned long long tot = 0, fr = 0;
    assert_int_equal(bn_sys_parse_swap(mi, &tot, &fr), 0);
    assert_true(tot == 2097148ULL * 1024 && fr == 1048576ULL * 1024);
    assert_int_equal(bn_sys_parse_swap("MemTotal: 1 kB\nSwapTotal: 0 kB\n", &tot, &fr), -1);
    assert_int_equal(bn_sys_parse_swap("SwapTotal: 0 kB\nSwapFree: 0 kB\n", &tot, &fr), 0);
    assert_true(tot == 0 && fr == 0);
}

static void test_diskstats(void **state)
{
    (void)state;
    /* major minor name reads merged sectors_read ms writes merged sectors_written ... */
    const char *text = "   7       0 loop0 100 0 1000 10 0 0 0 0 0 0 0\n"
                       "   8       0 sda 500 10 4000 300 200 5 2000 100 0 400 400 0 0 0 0\n"
                       "   8       1 sda1 400 10 3000 250 150 5 1500 80 0 300 300\n"
                       "   8      16 sdb 10 0 8 1 0 0 0 0 0 1 1\n"
                       "  65     160 sdaa 1 0 16 1 0 0 32 0 0 1 1\n" /* the 27th disk, not sda's */
                       " 259       0 nvme0n1 900 0 10000 1 800 0 20000 1 0 1 1\n"
                       " 259       1 nvme0n1p1 900 0 10000 1 800 0 20000 1 0 1 1\n"
                       " 179       0 mmcblk0 1 0 2 0 1 0 4 0 0 0 0\n"
                       " 179       1 mmcblk0p1 1 0 2 0 1 0 4 0 0 0 0\n"
                       " 253       0 dm-0 300 0 3000 1 100 0 1500 1 0 1 1\n"
                       "   9       0 md0 300 0 3000 1 100 0 1500 1 0 1 1\n"
                       "garbage line\n";
    unsigned long long r = 0, w = 0;
    assert_int_equal(bn_sys_parse_diskstats(text, &r, &w), 0);
    assert_true(r == (4000ULL + 8 + 16 + 10000 + 2) * 512);
    assert_true(w == (2000ULL + 0 + 32 + 20000 + 4) * 512);
    assert_int_equal(bn_sys_parse_diskstats("nothing here\n", &r, &w), -1);
}

static void test_netdev(void **state)
{
    (void)state;
    const char *text =
            "Inter-|   Receive                                                |  Transmit\n"
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes    "
            "packets errs drop fifo colls carrier compressed\n"
            "    lo: 5000000  100    0    0    0     0          0         0  5000000  100    0 "
            "   0    0     0       0          0\n"
            "  eth0: 1234567  2000    0    0    0     0          0         0   765432  1500    "
            "0    0    0     0       0          0\n"
            " wlan0:1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n";
    unsigned long long rx = 0, tx = 0;
    assert_int_equal(bn_sys_parse_netdev(text, &rx, &tx), 0);
    assert_true(rx == 1234567ULL + 1000 && tx == 765432ULL + 2000);
    assert_int_equal(bn_sys_parse_netdev("Inter-| Receive\n face |bytes\n", &rx, &tx), -1);
}

static void test_pid_stat(void **state)
{
    (void)state;
    const char *text = "4242 (bit net) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 "
                       "150 50 0 0 20 0 3 0 12345 104857600 2560 18446744073709551615 1 1 0 0";
    bn_sys_proc p;
    memset(&p, 0, sizeof p);
    assert_int_equal(bn_sys_parse_pid_stat(text, 4096, &p), 0);
    assert_int_equal(p.pid, 4242);
    assert_int_equal(p.state, 'S');
    assert_true(p.ticks == 200);
    assert_true(p.rss == 2560ULL * 4096);
    assert_int_equal(bn_sys_parse_pid_stat("4242 (short) S 1 2", 4096, &p), -1);
    assert_int_equal(bn_sys_parse_pid_stat("no parenthesis", 4096, &p), -1);
    assert_string_equal(bn_sys_state_name('D'), "disk wait");
    assert_string_equal(bn_sys_state_name('Z'), "zombie");
    assert_string_equal(bn_sys_state_name('?'), "unknown");
}

static void test_lock_holder(void **state)
{
    (void)state;
    const char *text = "1: POSIX  ADVISORY  WRITE 111 08:01:5678 0 EOF\n"
                       "2: FLOCK  ADVISORY  WRITE 222 08:02:5678 0 EOF\n"
                       "2: -> FLOCK  ADVISORY  WRITE 444 fd:01:5678 0 EOF\n"
                       "3: FLOCK  ADVISORY  WRITE 333 fd:01:5678 0 EOF\n"
                       "4: OFDLCK ADVISORY  READ  -1 fd:01:5678 0 EOF\n";
    assert_int_equal(bn_sys_parse_lock_holder(text, 0xfd, 1, 5678), 333);
    assert_int_equal(bn_sys_parse_lock_holder(text, 8, 2, 5678), 222);
    assert_int_equal(bn_sys_parse_lock_holder(text, 8, 1, 5678), 0); /* POSIX: not ours */
    assert_int_equal(bn_sys_parse_lock_holder(text, 0xfd, 1, 9999), 0);
    assert_int_equal(bn_sys_parse_lock_holder("", 0xfd, 1, 5678), 0);
}

/* The real /proc: this process when its name is bitnet (run through a symlink by the CLI
 * test), and never a process that is not bitnet. */
static void test_procs(void **state)
{
    (void)state;
    bn_sys_proc ps[256];
    static bn_sys_skip skip;
    const int n = bn_sys_bitnet_procs(NULL, ps, 256, NULL);
    assert_true(n >= 0);
    for (int i = 0; i < n && i < 256; i++) {
        assert_true(ps[i].pid > 0);
        assert_true(strstr(ps[i].cmd, "bitnet") != NULL);
    }
    /* with the pids to skip: the same processes, and this one (not bitnet) remembered */
    assert_int_equal(bn_sys_bitnet_procs(NULL, ps, 256, &skip), n);
    assert_true(skip.n > 0);
    const int me = (int)getpid();
    int found = 0;
    for (int i = 0; i < skip.n; i++) found |= skip.pid[i] == me;
    assert_true(found);
    for (int i = 1; i < skip.n; i++) assert_true(skip.pid[i - 1] < skip.pid[i]);
    assert_int_equal(bn_sys_bitnet_procs(NULL, ps, 256, &skip), n);
    char buf[64];
    assert_int_equal(bn_sys_read_file("/proc/self/stat", buf, sizeof buf), 0);
    assert_true(strlen(buf) < sizeof buf);
    assert_int_equal(bn_sys_read_file("/nonexistent/x", buf, sizeof buf), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cpus),      cmocka_unit_test(test_loadavg_swap),
            cmocka_unit_test(test_diskstats), cmocka_unit_test(test_netdev),
            cmocka_unit_test(test_pid_stat),  cmocka_unit_test(test_lock_holder),
            cmocka_unit_test(test_procs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
