# bench/lib.sh — what bench/run and bench/budget share. Sourced, never run.
#
#   free_port                         a free loopback TCP port
#   to_us VALUE                       wrk's "123.45us" / "1.23ms" / "1.2s" in microseconds
#   bench_upstream_conf DIR PORT      DIR/nginx.conf: an nginx on 127.0.0.1:PORT answering every
#                                     request with a fixed ~600-byte chat.completion
#   bench_proxy_conf DIR PORT UP      DIR/nginx.conf: nginx proxy_pass on 127.0.0.1:PORT (1 worker,
#                                     keep-alive pool) to the upstream on port UP
#   bench_chat_body                   the ~1 KB JSON chat request both benches send
#   bench_post_lua FILE BODY          a wrk script that POSTs BODY with the bench's master key

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

to_us() { # wrk latency "123.45us" / "1.23ms" / "1.2s" → microseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n }'
}

bench_answer='{"id":"chatcmpl-bench0000000000000000000000","object":"chat.completion","created":1795000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"This is a fixed answer from the benchmark upstream. It is about as long as a short reply from a chat model, which is what the gateway relays most of the time in production traffic.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":240,"completion_tokens":42,"total_tokens":282},"system_fingerprint":"fp_bench"}'

# DIR/nginx.conf: one worker, no access log, long keep-alive; the rest of the http block on stdin.
nginx_conf() { # dir
  mkdir -p "$1"
  {
    cat <<CONF
worker_processes 1;
daemon off;
error_log $1/error.log warn;
pid $1/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
CONF
    cat
    echo "}"
  } >"$1/nginx.conf"
}

bench_upstream_conf() { # dir port
  nginx_conf "$1" <<CONF
  client_body_buffer_size 16k;
  server {
    listen 127.0.0.1:$2;
    location / { default_type application/json; return 200 '$bench_answer'; }
  }
CONF
}

bench_proxy_conf() { # dir port upstream-port
  nginx_conf "$1" <<CONF
  upstream up { server 127.0.0.1:$3; keepalive 64; }
  server {
    listen 127.0.0.1:$2;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
CONF
}

bench_chat_body() {
  python3 - <<'PY'
import json
msg = "Summarize the following paragraph for a client report. " * 16
print(json.dumps({"model": "app/chat", "messages": [{"role": "system", "content": "You are terse."},
                  {"role": "user", "content": msg[:850]}], "max_tokens": 200}))
PY
}

bench_post_lua() { # file body
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.body = [[$2]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
LUA
}
