// flashattn-bench: the main job. Checks the engine for the best device present against
// the fp64 oracle where the oracle fits, times it beside naive standard attention, and
// prints time, GFLOP/s and memory per sequence length (O(N) against O(N^2)).
//
//   flashattn-bench [--device cpu|cuda|auto] [--dtype fp32|fp16|bf16] [--head-dim D]
//                   [--heads H] [--batch B] [--causal] [--backward] [--sizes 256,512,...]
//                   [--reps R] [--check-max N] [--json FILE|-] [--quick]
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "bench_types.hpp"
#include "cpu/thread_pool.hpp"
#include "flashattn/flashattn.hpp"

using namespace flashattn;
using namespace flashattn::bench;

namespace {

void usage() {
  std::puts(
      "usage: flashattn-bench [--device cpu|cuda|auto] [--dtype fp32|fp16|bf16] [--head-dim D] [--heads H]\n"
      "                       [--batch B] [--causal] [--backward] [--sizes 256,512,...] [--reps R]\n"
      "                       [--check-max N] [--json FILE|-] [--quick]");
}

std::vector<int> parse_sizes(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) out.push_back(std::stoi(tok));
  return out;
}

DType parse_dtype(const std::string& s) {
  if (s == "fp32" || s == "f32") return DType::f32;
  if (s == "fp16" || s == "f16") return DType::f16;
  if (s == "bf16") return DType::bf16;
  throw std::invalid_argument("--dtype: expected fp32, fp16 or bf16, got " + s);
}

std::string fmt(double v, int prec = 1) {
  if (v < 0) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

std::string json_number(double v) {
  if (v < 0 || !std::isfinite(v)) return "null";
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  BenchConfig cfg;
  std::string json_path;
  bool quick = false, batch_given = false, heads_given = false, dtype_given = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + ": missing value");
        return argv[++i];
      };
      if (a == "--device") cfg.device = next();
      else if (a == "--dtype") cfg.dtype = parse_dtype(next()), dtype_given = true;
      else if (a == "--head-dim") cfg.head_dim = std::stoi(next());
      else if (a == "--heads") cfg.heads = std::stoi(next()), heads_given = true;
      else if (a == "--batch") cfg.batch = std::stoi(next()), batch_given = true;
      else if (a == "--causal") cfg.causal = true;
      else if (a == "--backward") cfg.backward = true;
      else if (a == "--sizes") cfg.sizes = parse_sizes(next());
      else if (a == "--reps") cfg.reps = std::stoi(next());
      else if (a == "--check-max") cfg.check_max = std::stoi(next());
      else if (a == "--json") json_path = next();
      else if (a == "--quick") quick = true;
      else if (a == "-h" || a == "--help") {
        usage();
        return 0;
      } else {
        throw std::invalid_argument("unknown argument " + a);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flashattn-bench: %s\n", e.what());
    usage();
    return 2;
  }

  const bool use_gpu = cfg.device == "cuda" || (cfg.device == "auto" && gpu_present());
  if (cfg.sizes.empty()) {
    if (use_gpu) cfg.sizes = quick ? std::vector<int>{1024, 4096} : std::vector<int>{1024, 2048, 4096, 8192, 16384};
    else cfg.sizes = quick ? std::vector<int>{256, 1024} : std::vector<int>{256, 512, 1024, 2048, 4096, 8192, 16384};
  }
  if (use_gpu && !batch_given && !heads_given) {
    // GPU default: the anchors' training shape, 16k tokens per batch and hidden 2048, bf16.
    cfg.tokens_per_batch = 16384;
    cfg.heads = 2048 / cfg.head_dim;
    if (!dtype_given) cfg.dtype = DType::bf16;
    cfg.naive_max_bytes = 24LL << 30;
  }

  const int threads = detail::ThreadPool::instance().size();
  std::string device_name;
  double peak = -1;
  std::vector<BenchRow> rows;
  auto progress = [](const std::string& s) { std::fprintf(stderr, "\r\033[K%s ...", s.c_str()); };
  try {
    if (use_gpu) {
      device_name = gpu_name();
      rows = run_gpu_sweep(cfg, progress);
    } else {
      device_name = "cpu (" + std::to_string(threads) + " threads)";
      progress("measuring the fp32 FMA peak");
      peak = measure_cpu_fma_peak_gflops(threads);
      rows = run_cpu_sweep(cfg, progress);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nflashattn-bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "\r\033[K");

  const std::string batch_desc =
      cfg.tokens_per_batch > 0 ? std::to_string(cfg.tokens_per_batch) + "/N" : std::to_string(cfg.batch);
  std::printf("flashattn %s  device: %s  dtype: %s  B=%s H=%d D=%d%s\n", version(), device_name.c_str(),
              dtype_name(cfg.dtype), batch_desc.c_str(), cfg.heads, cfg.head_dim, cfg.causal ? " causal" : "");
  if (peak > 0) std::printf("measured fp32 FMA peak of this host: %.1f GFLOP/s\n", peak);
  std::printf("%7s | %-6s | %10s %9s | %10s %9s | %10s %9s | %10s %10s | %s\n", "N", "engine", "flash ms", "GFLOP/s",
              "bwd ms", "GFLOP/s", "naive ms", "GFLOP/s", "flash MB", "naive MB", "oracle check");
  bool all_ok = true;
  for (const auto& r : rows) {
    std::printf("%7d | %-6s | %10s %9s | %10s %9s | %10s %9s | %10s %10s | %s", r.n, r.engine.c_str(),
                fmt(r.flash_ms, 3).c_str(), fmt(r.flash_gflops).c_str(), fmt(r.flash_bwd_ms, 3).c_str(),
                fmt(r.flash_bwd_gflops).c_str(), fmt(r.naive_ms, 3).c_str(), fmt(r.naive_gflops).c_str(),
                fmt(r.flash_mem_mb).c_str(), fmt(r.naive_mem_mb).c_str(), r.check.c_str());
    if (r.check != "skipped") std::printf(" (err %.2e <= %.2e)", r.max_err, r.err_bound);
    std::printf("\n");
    all_ok = all_ok && r.check != "FAIL";
  }

  if (!json_path.empty()) {
    std::ostringstream js;
    const std::time_t now = std::time(nullptr);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    js << "{\n  \"tool\": \"flashattn-bench\", \"version\": \"" << version() << "\", \"date\": \"" << date
       << "\",\n  \"device\": \"" << device_name << "\", \"dtype\": \"" << dtype_name(cfg.dtype)
       << "\", \"batch\": " << cfg.batch << ", \"heads\": " << cfg.heads << ", \"head_dim\": " << cfg.head_dim
       << ", \"causal\": " << (cfg.causal ? "true" : "false") << ",\n  \"cpu_fma_peak_gflops\": " << json_number(peak)
       << ",\n  \"rows\": [\n";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      js << "    {\"n\": " << r.n << ", \"batch\": " << r.batch << ", \"engine\": \"" << r.engine << "\", \"flash_ms\": " << json_number(r.flash_ms)
         << ", \"flash_gflops\": " << json_number(r.flash_gflops) << ", \"flash_bwd_ms\": " << json_number(r.flash_bwd_ms)
         << ", \"flash_bwd_gflops\": " << json_number(r.flash_bwd_gflops) << ", \"naive_ms\": " << json_number(r.naive_ms)
         << ", \"naive_gflops\": " << json_number(r.naive_gflops) << ", \"flash_mem_mb\": " << json_number(r.flash_mem_mb)
         << ", \"naive_mem_mb\": " << json_number(r.naive_mem_mb) << ", \"check\": \"" << r.check
         << "\", \"max_err\": " << json_number(r.max_err) << ", \"err_bound\": " << json_number(r.err_bound) << "}"
         << (i + 1 < rows.size() ? ",\n" : "\n");
    }
    js << "  ]\n}\n";
    if (json_path == "-") std::cout << js.str();
    else std::ofstream(json_path) << js.str();
  }
  return all_ok ? 0 : 3;
}
