/* config_paths.c - where things are: the settings file (BITNET_CONFIG, XDG), "~" and relative
 * paths, the data directory and its creation, the bundled models (see config.h). */
#include "common/config.h"
#include "common/self_run.h"
#include "config_internal.h"

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* snprintf that reports truncation: 0 or -1. */
int bn__config_fmt_path(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static const char *home_dir(void)
{
    const char *h = getenv("HOME");
    if (h && *h) return h;
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
}

/* $VAR/sub when VAR is an absolute path (the XDG rule), else ~/fallback/sub. */
static int xdg_path(char *buf, size_t size, const char *var, const char *fallback, const char *sub)
{
    const char *x = getenv(var);
    if (x && x[0] == '/') return bn__config_fmt_path(buf, size, "%s/%s", x, sub);
    const char *h = home_dir();
    if (!h) return -1;
    return bn__config_fmt_path(buf, size, "%s/%s/%s", h, fallback, sub);
}

int bn_config_path(char *buf, size_t size)
{
    const char *p = getenv("BITNET_CONFIG");
    if (p && *p) return bn__config_fmt_path(buf, size, "%s", p);
    return xdg_path(buf, size, "XDG_CONFIG_HOME", ".config", "bitnet/config.json");
}

/* "~/x" -> $HOME/x; relative -> base/x (base NULL: the current directory). */
static int resolve_path(const char *p, const char *base, char *buf, size_t size)
{
    if (!*p || p[0] == '/') return bn__config_fmt_path(buf, size, "%s", p);
    if (p[0] == '~' && (p[1] == '/' || p[1] == '\0')) {
        const char *h = home_dir();
        return h ? bn__config_fmt_path(buf, size, "%s%s", h, p + 1) : -1;
    }
    if (p[0] == '.' && p[1] == '/') p += 2;
    if (base) return bn__config_fmt_path(buf, size, "%s/%s", base, p);
    char cwd[BN_CONFIG_PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return -1;
    return bn__config_fmt_path(buf, size, "%s/%s", strcmp(cwd, "/") ? cwd : "", p);
}

int bn_config_resolve_path(const char *p, const char *base, char *buf, size_t size)
{
    return resolve_path(p, base, buf, size);
}

void bn__config_dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        bn__config_fmt_path(buf, size, ".");
    else if (slash == path)
        bn__config_fmt_path(buf, size, "/");
    else
        bn__config_fmt_path(buf, size, "%.*s", (int)(slash - path), path);
}

static int default_data_dir(char *buf, size_t size)
{
    return xdg_path(buf, size, "XDG_DATA_HOME", ".local/share", "bitnet");
}

/* ---- directories --------------------------------------------------------------------- */

int bn_data_dir(const bn_config *c, char *buf, size_t size)
{
    const char *d = c ? bn_config_get_str(c, "data_dir") : NULL;
    if (d && *d) return bn__config_fmt_path(buf, size, "%s", d);
    return default_data_dir(buf, size);
}

/* mkdir -p with mode for the directories it creates. */
int bn__config_mkdir_p(const char *path, mode_t mode, char *err, size_t errsz)
{
    char buf[BN_CONFIG_PATH_MAX];
    if (bn__config_fmt_path(buf, sizeof buf, "%s", path)) {
        bn__config_set_err(err, errsz, "%s: path too long", path);
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST) {
            bn__config_set_err(err, errsz, "%s: cannot create: %s", buf, strerror(errno));
            return -1;
        }
        *p = saved;
        if (!saved) break;
    }
    struct stat st;
    if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
        bn__config_set_err(err, errsz, "%s: not a directory", path);
        return -1;
    }
    return 0;
}

int bn_data_dir_ensure(const bn_config *c, char *buf, size_t size, char *err, size_t errsz)
{
    if (bn_data_dir(c, buf, size)) {
        bn__config_set_err(err, errsz,
                           "cannot name the data directory (set HOME or XDG_DATA_HOME)");
        return -1;
    }
    return bn__config_mkdir_p(buf, 0700, err, errsz);
}

int bn_bundled_models_dir(char *buf, size_t size)
{
    char exe[BN_CONFIG_PATH_MAX], top[BN_CONFIG_PATH_MAX];
    if (sr_exe_path(exe, sizeof exe)) return -1;
    bn__config_dir_of(exe, top, sizeof top); /* .../bin or .../build */
    bn__config_dir_of(top, exe, sizeof exe); /* the prefix or the source tree */
    static const char *const subs[] = {"share/bitnet/models", "assets/models"};
    for (size_t i = 0; i < COUNT(subs); i++) {
        struct stat st;
        if (bn__config_fmt_path(buf, size, "%s/%s", strcmp(exe, "/") ? exe : "", subs[i]) == 0 &&
            stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
    }
    return -1;
}
