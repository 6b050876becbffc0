# bitnet tui's GPU panel (issue 20), on the Server screen under tmux: the watched server's GPU
# memory pool from its /metrics (bitnet serve -ngl writes bitnet_gpu_pool_*): used of
# reserved with the peak, free bytes, the largest free block and the fragmentation, the
# pressure responses by stage; a server without a pool says so; and this machine's GPUs from
# NVML, or "no GPU" with the reason. A stand-in server (python3) answers /health and a
# /metrics file the test rewrites, so the figures are known and change while it runs.
. tests/cli/lib.sh

TEST=test_tui_gpu
. tests/cli/tui_lib.sh
if ! command -v python3 >/dev/null 2>&1; then
    echo "  SKIP $TEST: no python3 for the stand-in server"
    finish "$TEST"
    exit $?
fi
mkdir -p "$XDG_CONFIG_HOME/bitnet"
echo '{"threads": 1}' >"$XDG_CONFIG_HOME/bitnet/config.json"

# metrics FILE RESERVED USED PEAK FREE LARGEST EVICT: a /metrics answer of bitnet serve -ngl
metrics() {
    cat >"$1.tmp" <<M
# TYPE bitnet_slots gauge
bitnet_slots 2
bitnet_slots_busy 1
bitnet_gpu_pool_reserved_bytes{gpu="0"} $2
bitnet_gpu_pool_used_bytes{gpu="0"} $3
bitnet_gpu_pool_peak_used_bytes{gpu="0"} $4
bitnet_gpu_pool_free_bytes{gpu="0"} $5
bitnet_gpu_pool_largest_free_bytes{gpu="0"} $6
bitnet_gpu_pool_failures_total{gpu="0"} 0
bitnet_gpu_pool_pressure_total{gpu="0",stage="evict_kv"} $7
bitnet_gpu_pool_pressure_total{gpu="0",stage="shrink_ctx"} 0
bitnet_gpu_pool_pressure_total{gpu="0",stage="cpu_layers"} 0
M
    mv "$1.tmp" "$1"
}
MiB=1048576
metrics "$TMP/m1" $((64 * MiB)) $((12 * MiB)) $((20 * MiB)) $((40 * MiB)) $((30 * MiB)) 0
printf '# TYPE bitnet_slots gauge\nbitnet_slots 2\nbitnet_slots_busy 0\n' >"$TMP/m2"
# the stand-in: GET /health 200, GET /metrics the file named by the path's port's entry
python3 -c 'import http.server, sys
files = sys.argv[1:]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        i = self.server.server_address[1] == ports[1]
        body = b"{\"status\":\"ok\"}" if self.path == "/health" else open(files[i], "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
import threading
servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), H) for _ in files]
ports = [s.server_address[1] for s in servers]
print(*ports, flush=True)
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()' "$TMP/m1" "$TMP/m2" >"$TMP/ports" &
PIDS="$PIDS $!"
wait_grep "[0-9] [0-9]" "$TMP/ports" 50
read -r P1 P2 <"$TMP/ports"

start g --server "127.0.0.1:$P1"
wait_for g "state +up, polled every second" "the stand-in server is up"
wait_for g "GPU" "the Server screen has a GPU panel"
wait_for g "pool .*12\\.0 MiB of 64\\.0 MiB used, peak 20\\.0 MiB" "pool: used of reserved, the peak"
wait_for g "free +40\\.0 MiB free, the largest block 30\\.0 MiB: fragmentation 25%" \
    "pool: free, the largest block, the fragmentation (1 - 30/40)"
wait_for g "pressure +evict_kv 0, shrink_ctx 0, cpu_layers 0; 0 failed" "pool: no pressure yet"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    wait_for g "NVML +0: .* of .* used" "NVML: this machine's GPU memory"
else
    wait_for g "NVML +no GPU: " "NVML: no GPU, said plainly with the reason"
fi
# the server's pool changes: the panel follows within a poll or two
metrics "$TMP/m1" $((64 * MiB)) $((50 * MiB)) $((60 * MiB)) $((14 * MiB)) $((2 * MiB)) 3
wait_for g "pool .*50\\.0 MiB of 64\\.0 MiB used, peak 60\\.0 MiB" "live: the new use and peak" 5
wait_for g "fragmentation 86%" "live: a fragmented pool (1 - 2/14)"
wait_for g "pressure +evict_kv 3, shrink_ctx 0, cpu_layers 0; 0 failed" "live: idle slots evicted"
keys g q
wait_for g "EXIT=0" "q quits"
# a server without -ngl: no pool, said so
start c --server "127.0.0.1:$P2"
wait_for c "pool +none: the server runs every layer on the CPU \\(serve without -ngl\\)" \
    "a server without a GPU pool says so"
keys c q
wait_for c "EXIT=0" "q quits"
finish "$TEST"
