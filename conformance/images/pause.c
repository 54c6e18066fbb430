/*
 * pause: the process that holds a pod sandbox's namespaces, for plexus's containerd tests.
 * Built static (gcc -static) into a FROM scratch image by conformance/images/build-pause.sh,
 * because the tests run offline and cannot pull registry.k8s.io/pause.
 *
 * Like the kubelet's pause: as PID 1 of the sandbox it reaps every child that is handed to
 * it, and it exits 0 on SIGTERM or SIGINT (so StopPodSandbox does not wait for a grace period
 * to run out before a SIGKILL).
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        static const char v[] = "plexus test pause 1\n";
        (void)!write(1, v, sizeof v - 1);
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = quit;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    for (;;) {
        pause();
    }
}
