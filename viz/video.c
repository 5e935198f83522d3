/* viz: MP4 through an installed ffmpeg (never a build dependency). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crl/viz.h"

/* Full path of ffmpeg on PATH into buf; 0 if found. */
static int find_ffmpeg(char *buf, size_t cap) {
    const char *path = getenv("PATH");
    if (!path || !*path) return -1;
    const char *p = path;
    while (*p) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 0 && n + 8 < cap) {
            memcpy(buf, p, n);
            memcpy(buf + n, "/ffmpeg", 8);
            struct stat st;
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
                return 0;
        }
        if (!e) break;
        p = e + 1;
    }
    return -1;
}

int crl_video_available(void) {
    char buf[4096];
    return find_ffmpeg(buf, sizeof buf) == 0;
}

static int encode(const char *frames_dir, const char *pattern, int fps,
                  const char *mp4_path, crl_err *err);

/* ffmpeg writes a temporary file in mp4_path's folder (same extension, so
 * it picks the same container), renamed over mp4_path when it succeeded and
 * removed when it failed (base.h's atomic outputs). */
int crl_video_encode(const char *frames_dir, const char *pattern, int fps,
                     const char *mp4_path, crl_err *err) {
    if (!frames_dir || !pattern || !mp4_path || fps < 1 || fps > 1000)
        return crl_errf(err, CRL_EINVAL, "video: bad arguments (fps %d)", fps);
    char *tmp = NULL;
    int rc = crl_atomic_temp(mp4_path, &tmp, err);
    if (rc) return rc;
    rc = encode(frames_dir, pattern, fps, tmp, err);
    if (!rc)
        rc = crl_atomic_rename(tmp, mp4_path, err);
    else
        unlink(tmp);
    free(tmp);
    return rc;
}

static int encode(const char *frames_dir, const char *pattern, int fps,
                  const char *mp4_path, crl_err *err) {
    if (!frames_dir || !pattern || !mp4_path || fps < 1 || fps > 1000)
        return crl_errf(err, CRL_EINVAL, "video: bad arguments (fps %d)", fps);
    char exe[4096];
    if (find_ffmpeg(exe, sizeof exe))
        return crl_errf(err, CRL_ENOTFOUND, "ffmpeg not found; frames are in %s",
                        frames_dir);
    char input[4096], rate[16];
    if (snprintf(input, sizeof input, "%s/%s", frames_dir, pattern) >= (int)sizeof input)
        return crl_errf(err, CRL_EINVAL, "video: path too long");
    snprintf(rate, sizeof rate, "%d", fps);
    /* Odd sizes are padded to even ones: yuv420p (what players expect)
     * needs them. */
    char *const argv[] = {exe,
                          "-hide_banner",
                          "-loglevel",
                          "error",
                          "-y",
                          "-framerate",
                          rate,
                          "-i",
                          input,
                          "-vf",
                          "pad=ceil(iw/2)*2:ceil(ih/2)*2",
                          "-c:v",
                          "libx264",
                          "-pix_fmt",
                          "yuv420p",
                          "-movflags",
                          "+faststart",
                          (char *)mp4_path,
                          NULL};
    int fd[2];
    if (pipe(fd)) return crl_errf(err, CRL_EIO, "video: pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return crl_errf(err, CRL_EIO, "video: fork: %s", strerror(errno));
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        dup2(fd[1], 2);
        close(fd[0]);
        execv(exe, argv);
        _exit(127);
    }
    close(fd[1]);
    /* Keep the tail of ffmpeg's messages for the error line. */
    char tail[512] = "";
    size_t nt = 0;
    char chunk[256];
    ssize_t k;
    while ((k = read(fd[0], chunk, sizeof chunk)) != 0) {
        if (k < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (ssize_t i = 0; i < k; i++) {
            if (nt + 1 >= sizeof tail) {
                memmove(tail, tail + sizeof tail / 2, sizeof tail / 2);
                nt -= sizeof tail / 2;
            }
            tail[nt++] = chunk[i];
        }
    }
    tail[nt] = '\0';
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return crl_errf(err, CRL_EIO, "video: waitpid failed");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return CRL_OK;
    /* Last non-empty line of the output. */
    while (nt > 0 && (tail[nt - 1] == '\n' || tail[nt - 1] == '\r')) tail[--nt] = '\0';
    char *last = strrchr(tail, '\n');
    last = last ? last + 1 : tail;
    if (WIFSIGNALED(status))
        return crl_errf(err, CRL_EIO, "ffmpeg killed by signal %d; frames are in %s",
                        WTERMSIG(status), frames_dir);
    return crl_errf(err, CRL_EIO, "ffmpeg failed (exit %d): %s; frames are in %s",
                    WEXITSTATUS(status), *last ? last : "no message", frames_dir);
}
