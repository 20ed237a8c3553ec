/* What the sandbox tests run inside the sandbox: one syscall family per mode, so the
 * tests can check that the tracer records each the way the issue asks. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void *thread_open(void *arg) {
    (void)arg;
    int fd = open("/data/thread.txt", O_RDONLY);
    if (fd >= 0) close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "nice") == 0) {
        printf("%d\n", getpriority(PRIO_PROCESS, 0));
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "whoami") == 0) {
        printf("%d:%d\n", getuid(), getgid());
        return 0;
    }
    struct stat st;
    /* A file checked with stat only: present, and one that is absent. */
    printf("only-stat %s\n", stat("/etc/only-stat", &st) == 0 ? "present" : "missing");
    printf("absent %s\n", stat("/etc/absent", &st) == 0 ? "present" : "missing");
    lstat("/etc/link", &st);
    access("/etc/acc", R_OK);
    char buf[256];
    readlink("/etc/link", buf, sizeof buf);
    /* A directory listed, then a relative open after chdir. */
    DIR *d = opendir("/data");
    if (d) { while (readdir(d)) {} closedir(d); }
    if (chdir("/data") == 0) { int fd = open("rel.txt", O_RDONLY); if (fd >= 0) close(fd); }
    /* openat relative to a directory fd. */
    int dfd = open("/etc", O_RDONLY | O_DIRECTORY);
    int fd = openat(dfd, "at.txt", O_RDONLY);
    if (fd >= 0) close(fd);
    /* A unix socket path. */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, "/run/app.sock");
    connect(s, (struct sockaddr *)&a, sizeof a);
    /* A child process and a thread. */
    pid_t p = fork();
    if (p == 0) { int f = open("/data/child.txt", O_RDONLY); if (f >= 0) close(f); _exit(0); }
    waitpid(p, NULL, 0);
    pthread_t t;
    pthread_create(&t, NULL, thread_open, NULL);
    pthread_join(t, NULL);
    /* Create a file and a directory at run time (they are not in the image). */
    mkdir("/data/made", 0755);
    fd = open("/data/made/new.txt", O_WRONLY | O_CREAT, 0644);
    if (fd >= 0) { write(fd, "x", 1); close(fd); }
    /* An exec through a shell script whose interpreter only the kernel opens. */
    fflush(stdout);
    execl("/data/script.sh", "script.sh", (char *)NULL);
    return 1;
}
