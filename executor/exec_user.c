/*
 * exec_user.c: resolve a Dockerfile USER ("name", "uid", "uid:gid", "name:group") against the
 * ROOTFS's /etc/passwd and /etc/group, as BuildKit (and runc's libcontainer/user) do: a numeric
 * id needs no entry; a name must exist; supplementary groups are every group listing the user.
 * Files are opened inside the rootfs (kiln_path_open_in_root), so an image's symlinked
 * /etc/passwd can never make kiln read a host file.
 */
#include <fcntl.h>
#include <sys/stat.h>

#define KILN_LOG_DOMAIN "executor"
#include "base/base.h"
#include "base/buf.h"
#include "base/path.h"
#include "executor/exec_internal.h"

/* /etc/passwd and /etc/group larger than this are refused (untrusted image content). */
#define ETC_FILE_MAX (16u << 20)

static int
read_etc_file(char **out, const char *rootfs, const char *name, kiln_error **err)
{
    cleanup_close int rootfd = -1;
    cleanup_close int fd = -1;
    kiln_buf buf = KILN_BUF_INIT;
    char chunk[8192];
    ssize_t n;

    *out = NULL;
    rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return kiln_error_errno(err, errno, "open rootfs `%s`", rootfs);
    fd = kiln_path_open_in_root(rootfd, name, O_RDONLY | O_CLOEXEC, 0, NULL);
    if (fd < 0)
        return 0; /* missing: numeric ids still work */
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            kiln_buf_dispose(&buf);
            return kiln_error_errno(err, errno, "read %s", name);
        }
        if (buf.len + (size_t)n > ETC_FILE_MAX) {
            kiln_buf_dispose(&buf);
            return kiln_error_set(err, KILN_EINVAL, "%s is larger than %u bytes", name,
                                  ETC_FILE_MAX);
        }
        kiln_buf_put(&buf, chunk, (size_t)n, NULL);
    }
    *out = kiln_buf_detach(&buf);
    return 0;
}

/* Split one colon-separated line into at most `max` fields (in place). Returns the count. */
static size_t
split_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;

    fields[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == ':') {
            *p = '\0';
            fields[n++] = p + 1;
        }
    }
    return n;
}

static bool
parse_id(const char *s, uint32_t *out)
{
    int64_t v;

    if (!s || !*s || kiln_parse_i64(s, &v, "id", NULL) < 0 || v < 0 || v > UINT32_MAX - 1)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Find a passwd entry by name (or by uid when name is NULL). */
static bool
find_passwd(const char *passwd, const char *name, uid_t uid, uid_t *uid_out, gid_t *gid_out,
            char **home_out, char **name_out)
{
    cleanup_free char *copy = xstrdup(passwd ? passwd : "");
    char *save = NULL;

    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[7];
        uint32_t u, g;

        if (*line == '#' || split_fields(line, f, 7) < 7)
            continue;
        if (!parse_id(f[2], &u) || !parse_id(f[3], &g))
            continue;
        if (name ? strcmp(f[0], name) != 0 : u != uid)
            continue;
        *uid_out = u;
        *gid_out = g;
        *home_out = xstrdup(*f[5] ? f[5] : "/");
        *name_out = xstrdup(f[0]);
        return true;
    }
    return false;
}

/* Find a group by name; *gid_out set when found. */
static bool
find_group(const char *group, const char *name, gid_t *gid_out)
{
    cleanup_free char *copy = xstrdup(group ? group : "");
    char *save = NULL;

    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4];
        uint32_t g;

        if (*line == '#' || split_fields(line, f, 4) < 3 || !parse_id(f[2], &g))
            continue;
        if (strcmp(f[0], name) == 0) {
            *gid_out = g;
            return true;
        }
    }
    return false;
}

static bool
member_of(char *members, const char *user)
{
    char *save = NULL;

    for (char *m = strtok_r(members, ",", &save); m; m = strtok_r(NULL, ",", &save))
        if (strcmp(m, user) == 0)
            return true;
    return false;
}

/* Supplementary groups: the primary gid first, then every group listing `user`. */
static void
collect_groups(kiln_exec_ident *id, const char *group, const char *user)
{
    cleanup_free char *copy = xstrdup(group ? group : "");
    char *save = NULL;

    id->groups = xcalloc(1, sizeof(gid_t));
    id->groups[id->n_groups++] = id->gid;
    if (!user)
        return;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4];
        uint32_t g;
        bool dup = false;

        if (*line == '#' || split_fields(line, f, 4) < 4 || !parse_id(f[2], &g))
            continue;
        if (!member_of(f[3], user))
            continue;
        for (size_t i = 0; i < id->n_groups; i++)
            dup = dup || id->groups[i] == g;
        if (dup)
            continue;
        id->groups = xreallocarray(id->groups, id->n_groups + 1, sizeof(gid_t));
        id->groups[id->n_groups++] = g;
    }
}

static int
resolve_group_part(kiln_exec_ident *id, const char *group_txt, const char *grp, const char *user,
                   kiln_error **err)
{
    uint32_t g;

    if (parse_id(grp, &g)) {
        id->gid = g;
    } else if (!*grp || !find_group(group_txt, grp, &id->gid)) {
        return kiln_error_set(err, KILN_EINVAL, "unable to find group %s%s%s%s", grp,
                              user ? " for user " : "", user ? user : "",
                              group_txt ? "" : ": no /etc/group in the rootfs");
    }
    return 0;
}

/* Resolve a user spec (see exec_internal.h). */
int
kiln_exec_resolve_user(kiln_exec_ident *out, const char *rootfs, const char *user, kiln_error **err)
{
    cleanup_free char *passwd = NULL;
    cleanup_free char *group = NULL;
    cleanup_free char *spec = xstrdup(user ? user : "");
    cleanup_free char *name = NULL;
    char *grp = strchr(spec, ':');
    uint32_t u;
    int ret;

    memset(out, 0, sizeof(*out));
    if (grp)
        *grp++ = '\0';
    ret = read_etc_file(&passwd, rootfs, "/etc/passwd", err);
    if (ret == 0)
        ret = read_etc_file(&group, rootfs, "/etc/group", err);
    if (ret < 0)
        return ret;
    if (!*spec && grp)
        return kiln_error_set(err, KILN_EINVAL, "user `%s` has no user part", user);
    if (!*spec || parse_id(spec, &u)) {
        if (!*spec)
            u = 0;
        /* numeric: the passwd entry, if any, gives the primary group and home */
        if (!find_passwd(passwd, NULL, u, &out->uid, &out->gid, &out->home, &name)) {
            out->uid = u;
            out->gid = 0; /* runc's default for an id without a passwd entry */
            out->home = xstrdup("/");
        }
    } else if (!find_passwd(passwd, spec, 0, &out->uid, &out->gid, &out->home, &name)) {
        return kiln_error_set(err, KILN_EINVAL, "unable to find user %s%s", spec,
                              passwd ? "" : ": no /etc/passwd in the rootfs");
    }
    if (grp) {
        ret = resolve_group_part(out, group, grp, name, err);
        if (ret < 0) {
            kiln_exec_ident_dispose(out);
            return ret;
        }
        /* an explicit group replaces the supplementary list, as runc does */
        out->groups = xcalloc(1, sizeof(gid_t));
        out->groups[out->n_groups++] = out->gid;
        return 0;
    }
    collect_groups(out, group, name);
    return 0;
}

/* Free an identity's owned fields. */
void
kiln_exec_ident_dispose(kiln_exec_ident *id)
{
    free(id->groups);
    free(id->home);
    memset(id, 0, sizeof(*id));
}
