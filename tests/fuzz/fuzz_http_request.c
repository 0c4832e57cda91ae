/*
 * Fuzz the HTTP request path end to end: the input is written to a real loopback connection of a
 * real server (llhttp glue, limits, pipelining, chunked bodies, error answers), then the client
 * half-closes and the loop runs until the server has let the connection go.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static struct sg_http_server *srv;

static void handler(struct sg_http_request *req, void *ud)
{
    (void)ud;
    if (sg_slice_eq(req->path, "/stream")) {
        sg_http_stream_begin(req, 200, NULL, 0);
        sg_http_stream_write(req, req->body.data ? req->body.data : "", req->body.len);
        sg_http_stream_end(req);
        return;
    }
    struct sg_slice h = sg_http_header_get(req, "x-status");
    int status = h.n == 3 ? atoi(h.p) : 200;
    if (status < 200 || status > 599)
        status = 200;
    sg_http_respond(req, status, NULL, 0, req->body.data ? req->body.data : "", req->body.len);
}

static void setup(void)
{
    uv_loop_init(&loop);
    struct sg_http_limits lim = {.max_header_bytes = 4096, .max_body_bytes = 65536};
    srv = sg_http_server_new(&loop, &lim, handler, NULL);
    if (sg_http_server_listen(srv, "127.0.0.1", 0, false) != 0)
        abort();
}

/* connect(2) to the loopback server. It returns at once unless a SYN is lost and resent a second
 * later; then libFuzzer's -timeout alarm may interrupt it (EINTR) while the connection goes on
 * in the background: wait for it instead of reporting the signal as a crash of the input. */
static int connect_server(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)sg_http_server_port(srv))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    int err = errno;
    if (fd >= 0 && err == EINTR) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        socklen_t n = sizeof err;
        int r;
        while ((r = poll(&p, 1, 10000)) < 0 && errno == EINTR) {
        }
        if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n) == 0 && err == 0)
            return fd;
        if (r == 0)
            err = ETIMEDOUT;
    }
    fprintf(stderr, "fuzz_http_request: cannot connect to the server: %s\n", strerror(err));
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv)
        setup();
    uint64_t before = sg_http_server_accepted(srv);
    int fd = connect_server();
    /* Write as much as the socket takes without blocking, interleaved with server turns. */
    size_t off = 0;
    char sink[65536];
    for (int spins = 0; spins < 100000; spins++) {
        if (off < size) {
            ssize_t w = send(fd, data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                off = size; /* the server closed on us: fine */
            if (off == size)
                shutdown(fd, SHUT_WR);
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
        }
        if (off == size && sg_http_server_accepted(srv) > before &&
            sg_http_server_connections(srv) == 0)
            break;
        if (size == 0 && off == 0) {
            shutdown(fd, SHUT_WR);
            off = 1;
            size = 1;
        }
    }
    close(fd);
    return 0;
}
