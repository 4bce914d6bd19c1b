/*
 * llb_file.c: FileOp construction: a chain of actions (mkdir, mkfile, rm, copy, symlink), each
 * applied to the result of the previous one, as BuildKit's client builds them (client/llb/
 * fileop.go). Only the last action has an output (index 0); earlier results are referenced as
 * "len(inputs) + action index", which is resolved at marshal time. Paths are made absolute and
 * cleaned like Go's path.Join("/", p), keeping a trailing slash on copy destinations.
 */
#include "base/path.h"
#include "llb/llb_internal.h"

#include "base/base.h"

void
kiln_llb_file_new(kiln_llb_vertex **out, kiln_llb_builder *b, kiln_llb_state base)
{
    kiln_llb_vertex *v = kiln_llb__vertex_new(b);
    Pb__FileOp *f = kiln_llb__alloc(b, sizeof(*f));

    pb__file_op__init(f);
    v->op.op_case = PB__OP__OP_FILE;
    v->op.file = f;
    v->dedup_inputs = true;
    v->platform_specific = true;
    /* the base becomes refs[0]; actions refer to it through bind_raw */
    v->file_base = kiln_llb__add_ref(v, base);
    kiln_llb_vertex_add_cap(v, "file.base");
    *out = v;
}

kiln_llb_state
kiln_llb_file_state(kiln_llb_vertex *f)
{
    return (kiln_llb_state){f, 0};
}

static char *
abs_path(kiln_llb_builder *b, const char *p, bool keep_slash)
{
    cleanup_free char *clean = kiln_path_join("/", p);
    size_t n = strlen(p);
    cleanup_free char *with = NULL;

    if (keep_slash && n && p[n - 1] == '/' && strcmp(clean, "/") != 0)
        with = xasprintf("%s/", clean);
    return kiln_llb__strdup(b, with ? with : clean);
}

static int
check_file_op(kiln_llb_vertex *f, const char *what, const char *path, kiln_error **err)
{
    if (!f || f->op.op_case != PB__OP__OP_FILE)
        return kiln_error_set(err, KILN_EINVAL, "file %s: vertex is not a file op", what);
    if (!path || !*path)
        return kiln_error_set(err, KILN_EINVAL, "file %s: empty path", what);
    return 0;
}

/* Append a new action working on the current base; returns it. */
static Pb__FileAction *
new_action(kiln_llb_vertex *v)
{
    Pb__FileOp *f = v->op.file;
    Pb__FileAction *a = kiln_llb__alloc(v->b, sizeof(*a));

    pb__file_action__init(a);
    kiln_llb__bind_raw(v, &a->input, v->file_base);
    a->secondaryinput = -1;
    if (f->n_actions)
        f->actions[f->n_actions - 1]->output = -1;
    a->output = 0;
    v->file_base = KILN_LLB__REL(f->n_actions);
    kiln_llb__push(v->b, &f->actions, &f->n_actions, a);
    return a;
}

static Pb__UserOpt *
user_opt(kiln_llb_vertex *v, const kiln_llb_user *u, int64_t base)
{
    Pb__UserOpt *o;

    if (!u->name && u->id < 0)
        return NULL;
    o = kiln_llb__alloc(v->b, sizeof(*o));
    pb__user_opt__init(o);
    if (u->name) {
        o->user_case = PB__USER_OPT__USER_BY_NAME;
        o->byname = kiln_llb__alloc(v->b, sizeof(*o->byname));
        pb__named_user_opt__init(o->byname);
        o->byname->name = kiln_llb__strdup(v->b, u->name);
        kiln_llb__bind_raw(v, &o->byname->input, base);
    } else {
        o->user_case = PB__USER_OPT__USER_BY_ID;
        o->byid = (uint32_t)u->id;
    }
    return o;
}

/* ChownOpt for info (NULL when no owner is set); base = reference of the action's input. */
static Pb__ChownOpt *
chown_opt(kiln_llb_vertex *v, const kiln_llb_file_info *info, int64_t base)
{
    Pb__ChownOpt *c;

    if (!info || (!info->user.name && info->user.id < 0 && !info->group.name && info->group.id < 0))
        return NULL;
    c = kiln_llb__alloc(v->b, sizeof(*c));
    pb__chown_opt__init(c);
    c->user = user_opt(v, &info->user, base);
    c->group = user_opt(v, &info->group, base);
    return c;
}

int
kiln_llb_file_mkdir(kiln_llb_vertex *v, const char *path, int32_t mode, bool make_parents,
                    const kiln_llb_file_info *info, kiln_error **err)
{
    int64_t base = v ? v->file_base : -1;
    Pb__FileAction *a;
    Pb__FileActionMkDir *m;
    int ret;

    if ((ret = check_file_op(v, "mkdir", path, err)) < 0)
        return ret;
    a = new_action(v);
    m = kiln_llb__alloc(v->b, sizeof(*m));
    pb__file_action_mk_dir__init(m);
    m->path = abs_path(v->b, path, false);
    m->mode = mode;
    m->makeparents = make_parents;
    m->owner = chown_opt(v, info, base);
    m->timestamp = info ? info->timestamp : -1;
    a->action_case = PB__FILE_ACTION__ACTION_MKDIR;
    a->mkdir = m;
    return 0;
}

int
kiln_llb_file_mkfile(kiln_llb_vertex *v, const char *path, int32_t mode, const void *data,
                     size_t len, const kiln_llb_file_info *info, kiln_error **err)
{
    int64_t base = v ? v->file_base : -1;
    Pb__FileAction *a;
    Pb__FileActionMkFile *m;
    int ret;

    if ((ret = check_file_op(v, "mkfile", path, err)) < 0)
        return ret;
    a = new_action(v);
    m = kiln_llb__alloc(v->b, sizeof(*m));
    pb__file_action_mk_file__init(m);
    m->path = abs_path(v->b, path, false);
    m->mode = mode;
    if (len) {
        m->data.data = kiln_llb__alloc(v->b, len);
        memcpy(m->data.data, data, len);
        m->data.len = len;
    }
    m->owner = chown_opt(v, info, base);
    m->timestamp = info ? info->timestamp : -1;
    a->action_case = PB__FILE_ACTION__ACTION_MKFILE;
    a->mkfile = m;
    return 0;
}

int
kiln_llb_file_rm(kiln_llb_vertex *v, const char *path, bool allow_not_found, bool allow_wildcard,
                 kiln_error **err)
{
    Pb__FileAction *a;
    Pb__FileActionRm *r;
    int ret;

    if ((ret = check_file_op(v, "rm", path, err)) < 0)
        return ret;
    a = new_action(v);
    r = kiln_llb__alloc(v->b, sizeof(*r));
    pb__file_action_rm__init(r);
    r->path = abs_path(v->b, path, false);
    r->allownotfound = allow_not_found;
    r->allowwildcard = allow_wildcard;
    a->action_case = PB__FILE_ACTION__ACTION_RM;
    a->rm = r;
    return 0;
}

int
kiln_llb_file_symlink(kiln_llb_vertex *v, const char *oldpath, const char *newpath,
                      const kiln_llb_file_info *info, kiln_error **err)
{
    int64_t base = v ? v->file_base : -1;
    Pb__FileAction *a;
    Pb__FileActionSymlink *s;
    int ret;

    if ((ret = check_file_op(v, "symlink", newpath, err)) < 0)
        return ret;
    if (!oldpath || !*oldpath)
        return kiln_error_set(err, KILN_EINVAL, "file symlink `%s`: empty target", newpath);
    a = new_action(v);
    s = kiln_llb__alloc(v->b, sizeof(*s));
    pb__file_action_symlink__init(s);
    s->oldpath = kiln_llb__strdup(v->b, oldpath); /* the link target is stored verbatim */
    s->newpath = abs_path(v->b, newpath, false);
    s->owner = chown_opt(v, info, base);
    s->timestamp = info ? info->timestamp : -1;
    a->action_case = PB__FILE_ACTION__ACTION_SYMLINK;
    a->symlink = s;
    return 0;
}

static void
copy_fields(kiln_llb_vertex *v, Pb__FileActionCopy *c, const kiln_llb_copy_opts *o)
{
    c->mode = o->mode;
    c->modestr = kiln_llb__strdup(v->b, o->mode_str);
    c->followsymlink = o->follow_symlink;
    c->dircopycontents = o->dir_copy_contents;
    c->attemptunpackdockercompatibility = o->attempt_unpack;
    c->createdestpath = o->create_dest_path;
    c->allowwildcard = o->allow_wildcard;
    c->allowemptywildcard = o->allow_empty_wildcard;
    c->alwaysreplaceexistingdestpaths = o->always_replace_existing;
    c->timestamp = o->info.timestamp;
    c->include_patterns = kiln_llb__strv(v->b, o->include_patterns, &c->n_include_patterns);
    c->exclude_patterns = kiln_llb__strv(v->b, o->exclude_patterns, &c->n_exclude_patterns);
    c->required_paths = kiln_llb__strv(v->b, o->required_paths, &c->n_required_paths);
    if (c->n_include_patterns || c->n_exclude_patterns)
        kiln_llb_vertex_add_cap(v, "file.copy.includeexcludepatterns");
    if (o->mode_str && *o->mode_str)
        kiln_llb_vertex_add_cap(v, "file.copy.modestring");
    if (o->always_replace_existing)
        kiln_llb_vertex_add_cap(v, "file.copy.alwaysreplaceexistingdestpaths");
}

int
kiln_llb_file_copy(kiln_llb_vertex *v, kiln_llb_state from, const char *src, const char *dest,
                   const kiln_llb_copy_opts *opts, kiln_error **err)
{
    kiln_llb_copy_opts defaults = KILN_LLB_COPY_OPTS_INIT;
    int64_t base = v ? v->file_base : -1;
    Pb__FileAction *a;
    Pb__FileActionCopy *c;
    int ret;

    if ((ret = check_file_op(v, "copy", dest, err)) < 0)
        return ret;
    if (!src || !*src)
        return kiln_error_set(err, KILN_EINVAL, "file copy to `%s`: empty source path", dest);
    opts = opts ? opts : &defaults;
    a = new_action(v);
    /* the copy source is a second input; scratch is allowed and stays -1 */
    kiln_llb__bind_input(v, &a->secondaryinput, from);
    c = kiln_llb__alloc(v->b, sizeof(*c));
    pb__file_action_copy__init(c);
    c->src = abs_path(v->b, src, false);
    c->dest = abs_path(v->b, dest, true);
    c->owner = chown_opt(v, &opts->info, base);
    copy_fields(v, c, opts);
    a->action_case = PB__FILE_ACTION__ACTION_COPY;
    a->copy = c;
    return 0;
}
