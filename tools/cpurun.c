/* cpurun FILE COMMAND [ARG...]: runs COMMAND and writes its user+system CPU time in nanoseconds (from
 * wait4's rusage, so the last instant before exit counts too) to FILE. Exits with COMMAND's status.
 * tools/bench.sh uses it for processes that end on their own, where /proc/<pid>/stat is gone too soon. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: cpurun FILE COMMAND [ARG...]\n");
        return 2;
    }
    pid_t child = fork();
    if (child < 0) { perror("fork"); return 2; }
    if (child == 0) {
        execvp(argv[2], argv + 2);
        perror("execvp");
        _exit(127);
    }
    int status = 0;
    struct rusage usage;
    if (wait4(child, &status, 0, &usage) < 0) { perror("wait4"); return 2; }
    unsigned long long ns = (unsigned long long)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000000ull +
                            (unsigned long long)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1000ull;
    FILE *out = fopen(argv[1], "w");
    if (out) {
        fprintf(out, "%llu\n", ns);
        fclose(out);
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
