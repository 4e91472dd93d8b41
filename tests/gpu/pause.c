/* The sandbox ("pause") container: sleep until told to stop, reap children.
 * Built static by tests/gpu/stage (gcc -static) and packed as
 * docker.io/rancher/mirrored-pause:3.10.2, the image RKE2 pins as sandbox. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
  struct sigaction s = {0}, c = {0};
  s.sa_handler = stop;
  sigaction(SIGINT, &s, NULL);
  sigaction(SIGTERM, &s, NULL);
  c.sa_handler = reap;
  c.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &c, NULL);
  for (;;) pause();
  return 42;
}
