/* crl render / view / plot: pictures of tasks, live policies, and runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "crl/env.h"
#include "crl/viz.h"

/* opts.c knows long flags only: accept the customary "-o FILE" (and
 * "-oFILE") as "--output FILE" by rewriting a copy of argv. */
#define MAX_ARGS 256
static int alias_output(int argc, char **argv, char **copy, char *buf, size_t cap) {
    if (argc > MAX_ARGS) argc = MAX_ARGS;
    for (int i = 0; i < argc; i++) {
        copy[i] = argv[i];
        if (i == 0) continue;
        if (!strcmp(argv[i], "--")) {
            for (int k = i; k < argc; k++) copy[k] = argv[k];
            break;
        }
        if (!strcmp(argv[i], "-o")) {
            copy[i] = "--output";
        } else if (!strncmp(argv[i], "-o", 2) && argv[i][2] != '-') {
            snprintf(buf, cap, "--output=%s", argv[i] + 2);
            copy[i] = buf;
        }
    }
    copy[argc] = NULL;
    return argc;
}

/* ---- crl render ----------------------------------------------------------- */

int cmd_render(int argc, char **argv) {
    const char *task = NULL, *out = NULL;
    int width = 640, height = 480, camera = -1;
    uint64_t seed = 0;
    const opt_def defs[] = {
        {"task", OPT_STR, &task, 0, 0, "task name (see 'crl tasks')", 0},
        {"output", OPT_STR, &out, 0, 0, "output PNG file (also -o)", 0},
        {"width", OPT_INT, &width, 16, 4096, "image width in pixels", 0},
        {"height", OPT_INT, &height, 16, 4096, "image height in pixels", 0},
        {"seed", OPT_U64, &seed, 0, 1.8e19, "reset seed of the initial scene", 0},
        {"camera", OPT_INT, &camera, -2, 64,
         "fixed camera index; -1 the task's framing camera, -2 a free camera", 0},
    };
    const int nd = (int)(sizeof defs / sizeof defs[0]);
    char *args[MAX_ARGS + 1], obuf[4096];
    argc = alias_output(argc, argv, args, obuf, sizeof obuf);
    int rc = opts_parse("render", defs, nd, argc, args,
                        "--task NAME -o FILE.png [--width W] [--height H] [--seed S]");
    if (rc) return rc == 1 ? 0 : rc;
    if (!task || !out) {
        fprintf(stderr, "crl render: --task NAME and -o FILE.png are required\n");
        return 2;
    }
    crl_err err = {0};
    crl_env_spec *spec = NULL;
    crl_env *env = NULL;
    crl_renderer *r = NULL;
    float *obs = NULL;
    unsigned char *rgb = NULL;
    if ((rc = crl_env_spec_create(task, &spec, &err)) ||
        (rc = crl_env_create(spec, &env, &err)))
        goto out;
    obs = calloc((size_t)crl_env_obs_dim(spec), sizeof *obs);
    rgb = malloc((size_t)width * height * 3);
    if (!obs || !rgb) {
        rc = crl_errf(&err, CRL_ENOMEM, "out of memory");
        goto out;
    }
    crl_env_reset(env, seed, obs);
    if ((rc = crl_render_open(&r, crl_env_model(spec), width, height, &err))) goto out;
    if (camera != -1) {
        crl_camera cam = {0};
        cam.mode = camera >= 0 ? CRL_CAMERA_FIXED : CRL_CAMERA_FREE;
        cam.id = camera;
        cam.azimuth = 90;
        cam.elevation = -25;
        if ((rc = crl_render_set_camera(r, &cam, &err))) goto out;
    }
    if ((rc = crl_render_frame(r, crl_env_data(env), NULL, rgb, &err)) ||
        (rc = crl_png_write(out, rgb, width, height, &err)))
        goto out;
    printf("%s: %dx%d\n", out, width, height);
out:
    if (rc) fprintf(stderr, "crl render: %s\n", err.msg);
    crl_render_close(r);
    free(rgb);
    free(obs);
    crl_env_free(env);
    crl_env_spec_free(spec);
    return cli_exit_code(rc);
}
