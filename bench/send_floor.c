// The fan-out's physical floor in C (bench/send_floor.py builds and runs it): one
// non-blocking send() of the same frame to every socket, RATE times a second.
// Usage: send_floor RATE MESSAGES FRAME_HEX FD...  (the sockets are inherited)
// Prints one JSON line: CPU seconds of this process, sends taken whole, sends refused or
// cut short by a full buffer, and the wall time of each pass over all the sockets.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

static double seconds(struct timespec t) { return t.tv_sec + t.tv_nsec / 1e9; }

static double cpu_seconds(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s RATE MESSAGES FRAME_HEX FD...\n", argv[0]);
    return 2;
  }
  double rate = atof(argv[1]);
  int messages = atoi(argv[2]);
  size_t length = strlen(argv[3]) / 2;
  unsigned char *frame = malloc(length);
  for (size_t i = 0; i < length; i++) sscanf(argv[3] + 2 * i, "%2hhx", &frame[i]);
  int count = argc - 4;
  int *fds = malloc(count * sizeof(int));
  for (int i = 0; i < count; i++) fds[i] = atoi(argv[4 + i]);
  double *passes = malloc(messages * sizeof(double));
  long sent = 0, refused = 0;

  double cpu_before = cpu_seconds();
  struct timespec start, next, begun, ended;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (int m = 0; m < messages; m++) {
    double due = seconds(start) + m / rate;
    next.tv_sec = (time_t)due;
    next.tv_nsec = (long)((due - next.tv_sec) * 1e9);
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    clock_gettime(CLOCK_MONOTONIC, &begun);
    for (int i = 0; i < count; i++) {
      if (send(fds[i], frame, length, MSG_DONTWAIT) == (ssize_t)length)
        sent++;
      else
        refused++;
    }
    clock_gettime(CLOCK_MONOTONIC, &ended);
    passes[m] = seconds(ended) - seconds(begun);
  }
  double cpu = cpu_seconds() - cpu_before;

  printf("{\"cpu_seconds\": %.6f, \"sent\": %ld, \"refused\": %ld, \"pass_seconds\": [", cpu,
         sent, refused);
  for (int m = 0; m < messages; m++) printf(m ? ", %.7f" : "%.7f", passes[m]);
  printf("]}\n");
  return 0;
}
