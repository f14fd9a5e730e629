/*
 * Rusty Cat's AppImage runtime: the ELF program at the start of a type-2 AppImage, followed by a SquashFS image
 * of the AppDir (the AppImage specification, type 2).
 *
 * Why our own: the usual runtime is a prebuilt binary downloaded from a release page, and the build machines
 * reach only package registries. Debian ships what a runtime needs as static libraries (libsquashfuse-dev,
 * libfuse3-dev and the compressors), so build.py compiles this file with them and only glibc stays dynamic.
 *
 * Behaviour (the same options the reference runtime offers, so users' habits and tools work):
 *   ./Rusty_Cat.AppImage [ARGS]            mount the image with FUSE at /tmp/.mount_rusty-XXXXXX and run
 *                                          $APPDIR/AppRun ARGS; unmount when it exits; exit with its status
 *   APPIMAGE_EXTRACT_AND_RUN=1 ./... ARGS  no FUSE: extract to a temporary folder, run, delete the folder
 *   --appimage-extract-and-run ARGS        the same
 *   --appimage-extract [PATTERN]           extract (everything, or paths matching the fnmatch PATTERN) to
 *                                          ./squashfs-root
 *   --appimage-mount                       mount, print the mount point, stay until interrupted
 *   --appimage-offset                      print the byte offset of the SquashFS image
 *   --appimage-version, --appimage-help
 * AppRun gets APPIMAGE (this file), APPDIR (the mount point or folder), ARGV0 and OWD in its environment.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <squashfuse/ll.h>
#include <squashfuse/traverse.h>

#define RUNTIME_VERSION "rusty-cat-appimage-runtime 1"

/* Sections the AppImage tools look for: update information and signature (left empty: no in-place updates). */
__attribute__((section(".upd_info"), used)) static char update_info[1024];
__attribute__((section(".sha256_sig"), used)) static char signature[1024];
__attribute__((section(".sig_key"), used)) static char signature_key[8192];

static pid_t child_pid = -1;

static void die(const char *what) {
    fprintf(stderr, "AppImage runtime: %s: %s\n", what, strerror(errno));
    exit(EXIT_FAILURE);
}

/* The image starts where the ELF file ends: the section header table is the last thing the linker writes. */
static off_t squashfs_offset(const char *self) {
    int fd = open(self, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("cannot open the AppImage");
    Elf64_Ehdr header;
    if (pread(fd, &header, sizeof header, 0) != (ssize_t)sizeof header) die("cannot read the ELF header");
    close(fd);
    if (memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64) {
        fprintf(stderr, "AppImage runtime: %s is not a 64-bit ELF file\n", self);
        exit(EXIT_FAILURE);
    }
    return (off_t)(header.e_shoff + (Elf64_Off)header.e_shentsize * header.e_shnum);
}

static void set_environment(const char *self, const char *appdir, const char *argv0) {
    char cwd[PATH_MAX];
    setenv("APPIMAGE", self, 1);
    setenv("APPDIR", appdir, 1);
    setenv("ARGV0", argv0, 1);
    if (getcwd(cwd, sizeof cwd)) setenv("OWD", cwd, 1);
}

static void forward_signal(int sig) {
    if (child_pid > 0) kill(child_pid, sig);
}

/* Run $APPDIR/AppRun with the user's arguments in a child process and return its exit status, shell style. */
static int run_apprun(const char *appdir, int argc, char **argv) {
    char apprun[PATH_MAX];
    snprintf(apprun, sizeof apprun, "%s/AppRun", appdir);
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) die("out of memory");
    args[0] = apprun;
    for (int i = 1; i < argc; i++) args[i] = argv[i];

    struct sigaction forward = {.sa_handler = forward_signal};
    sigemptyset(&forward.sa_mask);
    child_pid = fork();
    if (child_pid < 0) die("fork");
    if (child_pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        execv(apprun, args);
        fprintf(stderr, "AppImage runtime: cannot run %s: %s\n", apprun, strerror(errno));
        _exit(127);
    }
    sigaction(SIGINT, &forward, NULL);
    sigaction(SIGTERM, &forward, NULL);
    sigaction(SIGHUP, &forward, NULL);
    sigaction(SIGQUIT, &forward, NULL);
    int status = 0;
    while (waitpid(child_pid, &status, 0) < 0) {
        if (errno != EINTR) die("waitpid");
    }
    free(args);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return EXIT_FAILURE;
}

/* ---------------------------------------------------------------------------------------------- extraction */

static int extract(const char *self, off_t offset, const char *target, const char *pattern, bool verbose) {
    int fd = open(self, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("cannot open the AppImage");
    sqfs fs;
    if (sqfs_init(&fs, fd, (size_t)offset) != SQFS_OK) {
        fprintf(stderr, "AppImage runtime: no SquashFS image at offset %lld\n", (long long)offset);
        return EXIT_FAILURE;
    }
    if (mkdir(target, 0755) != 0 && errno != EEXIST) die(target);

    sqfs_traverse trv;
    if (sqfs_traverse_open(&trv, &fs, sqfs_inode_root(&fs)) != SQFS_OK) {
        fprintf(stderr, "AppImage runtime: cannot read the image's root directory\n");
        return EXIT_FAILURE;
    }
    size_t buffer_size = 1 << 20;
    char *buffer = malloc(buffer_size);
    if (!buffer) die("out of memory");
    sqfs_err err = SQFS_OK;
    int failures = 0;
    while (sqfs_traverse_next(&trv, &err)) {
        if (trv.dir_end) continue;
        if (pattern && fnmatch(pattern, trv.path, 0) != 0) continue;
        char dest[PATH_MAX];
        if (snprintf(dest, sizeof dest, "%s/%s", target, trv.path) >= (int)sizeof dest) {
            failures++;
            continue;
        }
        if (pattern) {  /* a filtered extraction may skip the parent directories: create them */
            for (char *slash = strchr(dest + strlen(target) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                *slash = '\0';
                mkdir(dest, 0755);
                *slash = '/';
            }
        }
        sqfs_inode inode;
        if (sqfs_inode_get(&fs, &inode, sqfs_dentry_inode(&trv.entry)) != SQFS_OK) {
            failures++;
            continue;
        }
        mode_t perms = inode.base.mode & 07777;
        mode_t type = sqfs_dentry_mode(&trv.entry) & S_IFMT;
        if (verbose) printf("%s\n", dest);
        if (type == S_IFDIR) {
            if (mkdir(dest, perms | 0700) != 0 && errno != EEXIST) failures++;
        } else if (type == S_IFREG) {
            unlink(dest);
            int out = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, perms | 0600);
            if (out < 0) {
                failures++;
                continue;
            }
            sqfs_off_t done = 0, total = (sqfs_off_t)inode.xtra.reg.file_size;
            while (done < total) {
                sqfs_off_t chunk = total - done < (sqfs_off_t)buffer_size ? total - done : (sqfs_off_t)buffer_size;
                if (sqfs_read_range(&fs, &inode, done, &chunk, buffer) != SQFS_OK || chunk <= 0) break;
                if (write(out, buffer, (size_t)chunk) != (ssize_t)chunk) break;
                done += chunk;
            }
            if (done != total) failures++;
            fchmod(out, perms);
            close(out);
        } else if (type == S_IFLNK) {
            size_t size = buffer_size;
            if (sqfs_readlink(&fs, &inode, buffer, &size) != SQFS_OK) {
                failures++;
                continue;
            }
            unlink(dest);
            if (symlink(buffer, dest) != 0) failures++;
        }
        /* devices, fifos and sockets have no place in an AppDir: skipped */
    }
    if (err != SQFS_OK) failures++;
    sqfs_traverse_close(&trv);
    free(buffer);
    sqfs_destroy(&fs);
    close(fd);
    if (failures) fprintf(stderr, "AppImage runtime: %d entries could not be extracted\n", failures);
    return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int extract_and_run(const char *self, off_t offset, int argc, char **argv) {
    const char *tmp = getenv("TMPDIR");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/appimage_extracted_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) die("cannot create a temporary folder");
    int status = extract(self, offset, dir, NULL, false);
    if (status == EXIT_SUCCESS) {
        set_environment(self, dir, argv[0]);
        status = run_apprun(dir, argc, argv);
    }
    if (!getenv("NO_CLEANUP")) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return status;
}

/* --------------------------------------------------------------------------------------------------- mount */

static struct fuse_lowlevel_ops operations = {
    .lookup = sqfs_ll_op_lookup,
    .forget = sqfs_ll_op_forget,
    .getattr = sqfs_ll_op_getattr,
    .readlink = sqfs_ll_op_readlink,
    .open = sqfs_ll_op_open,
    .read = sqfs_ll_op_read,
    .release = sqfs_ll_op_release,
    .opendir = sqfs_ll_op_opendir,
    .readdir = sqfs_ll_op_readdir,
    .releasedir = sqfs_ll_op_releasedir,
    .listxattr = sqfs_ll_op_listxattr,
    .getxattr = sqfs_ll_op_getxattr,
    .create = sqfs_ll_op_create,
};

static void *serve(void *session) {
    fuse_session_loop((struct fuse_session *)session);
    return NULL;
}

/* Mount the image read-only and serve it from a thread. Returns false (with the reason printed) when FUSE is
 * not usable here: no /dev/fuse, no fusermount3, or not allowed (containers). */
static bool mount_image(const char *self, off_t offset, char *mountpoint, size_t size, sqfs_ll_chan *channel,
                        pthread_t *thread) {
    const char *tmp = getenv("TMPDIR");
    snprintf(mountpoint, size, "%s/.mount_rusty-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(mountpoint)) die("cannot create the mount point");
    sqfs_ll *ll = sqfs_ll_open(self, (size_t)offset);
    if (!ll) {
        fprintf(stderr, "AppImage runtime: cannot read the SquashFS image at offset %lld\n", (long long)offset);
        rmdir(mountpoint);
        exit(EXIT_FAILURE);
    }
    char fsname[PATH_MAX + 16];
    snprintf(fsname, sizeof fsname, "-ofsname=%s", self);
    char *fuse_argv[] = {"rusty-cat-appimage", "-oro,nodev,nosuid,subtype=rusty-cat", fsname, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
    if (sqfs_ll_mount(channel, mountpoint, &args, &operations, sizeof operations, ll) != SQFS_OK) {
        rmdir(mountpoint);
        return false;
    }
    fcntl(fuse_session_fd(channel->session), F_SETFD, FD_CLOEXEC);
    /* Only the main thread handles signals (it forwards them to the app). */
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    int failed = pthread_create(thread, NULL, serve, channel->session);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (failed) {
        errno = failed;
        die("cannot start the FUSE thread");
    }
    return true;
}

static void unmount_image(const char *mountpoint, sqfs_ll_chan *channel, pthread_t thread) {
    fuse_session_exit(channel->session);
    fuse_session_unmount(channel->session);  /* the serving thread's read() then fails and its loop ends */
    pthread_join(thread, NULL);
    fuse_session_destroy(channel->session);
    rmdir(mountpoint);
}

static void explain_fuse(void) {
    fprintf(stderr,
            "AppImage runtime: cannot mount the AppImage with FUSE.\n"
            "Install FUSE 3 (Debian/Ubuntu: sudo apt install fuse3), or run it without FUSE:\n"
            "    APPIMAGE_EXTRACT_AND_RUN=1 %s   (or --appimage-extract-and-run)\n"
            "or unpack it once with --appimage-extract and start squashfs-root/AppRun.\n",
            getenv("APPIMAGE") ? getenv("APPIMAGE") : "./Rusty_Cat.AppImage");
}

static volatile sig_atomic_t stop_requested = 0;

static void request_stop(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* ---------------------------------------------------------------------------------------------------- main */

int main(int argc, char **argv) {
    char self[PATH_MAX];
    if (!realpath("/proc/self/exe", self)) die("cannot find the AppImage's own path");
    off_t offset = squashfs_offset(self);
    const char *option = argc > 1 && strncmp(argv[1], "--appimage-", 11) == 0 ? argv[1] : NULL;

    if (option && strcmp(option, "--appimage-offset") == 0) {
        printf("%lld\n", (long long)offset);
        return EXIT_SUCCESS;
    }
    if (option && strcmp(option, "--appimage-version") == 0) {
        printf("%s\n", RUNTIME_VERSION);
        return EXIT_SUCCESS;
    }
    if (option && strcmp(option, "--appimage-extract") == 0) {
        return extract(self, offset, "squashfs-root", argc > 2 ? argv[2] : NULL, true);
    }
    if (option && strcmp(option, "--appimage-extract-and-run") == 0) {
        argv[1] = argv[0];  /* drop the option, keep argv[0] */
        return extract_and_run(self, offset, argc - 1, argv + 1);
    }
    if (option && strcmp(option, "--appimage-mount") == 0) {
        char mountpoint[PATH_MAX];
        sqfs_ll_chan channel;
        pthread_t thread;
        if (!mount_image(self, offset, mountpoint, sizeof mountpoint, &channel, &thread)) {
            explain_fuse();
            return EXIT_FAILURE;
        }
        printf("%s\n", mountpoint);
        fflush(stdout);
        struct sigaction stop = {.sa_handler = request_stop};
        sigemptyset(&stop.sa_mask);
        sigaction(SIGINT, &stop, NULL);
        sigaction(SIGTERM, &stop, NULL);
        sigaction(SIGHUP, &stop, NULL);
        while (!stop_requested) pause();
        unmount_image(mountpoint, &channel, thread);
        return EXIT_SUCCESS;
    }
    if (option && strcmp(option, "--appimage-help") != 0) {
        fprintf(stderr, "AppImage runtime: unknown option %s\n", option);
    }
    if (option) {
        printf("Rusty Cat AppImage. Options of the AppImage itself (everything else goes to Rusty Cat):\n"
               "  --appimage-extract [PATTERN]  unpack (matching files) into ./squashfs-root\n"
               "  --appimage-extract-and-run    run without FUSE (also: APPIMAGE_EXTRACT_AND_RUN=1)\n"
               "  --appimage-mount              mount and print the mount point until interrupted\n"
               "  --appimage-offset             print the offset of the SquashFS image\n"
               "  --appimage-version            print the runtime's version\n");
        return strcmp(option, "--appimage-help") == 0 ? EXIT_SUCCESS : 2;
    }

    const char *no_fuse = getenv("APPIMAGE_EXTRACT_AND_RUN");
    if (no_fuse && *no_fuse && strcmp(no_fuse, "0") != 0) return extract_and_run(self, offset, argc, argv);

    char mountpoint[PATH_MAX];
    sqfs_ll_chan channel;
    pthread_t thread;
    if (!mount_image(self, offset, mountpoint, sizeof mountpoint, &channel, &thread)) {
        setenv("APPIMAGE", self, 1);
        explain_fuse();
        return EXIT_FAILURE;
    }
    set_environment(self, mountpoint, argv[0]);
    int status = run_apprun(mountpoint, argc, argv);
    unmount_image(mountpoint, &channel, thread);
    return status;
}
