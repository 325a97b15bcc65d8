// The CUDA emulator's scheduler (cuda_emu.h): the threads of one block are fibers,
// resumed round-robin; each runs until it waits at a barrier or returns. A barrier
// opens when every thread still running has arrived; a pass in which no barrier opens
// and no thread returns is a deadlock, reported with the kernel and block.
#include "cuda_emu.h"

#include "ppsim/calibrate/model.h"

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define PPSIM_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PPSIM_EMU_ASAN 1
#endif
#endif
#ifdef PPSIM_EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace ppsim::emu {
namespace {

constexpr std::size_t kStackBytes = 256u << 10;  // kernels' locals are small; sanitizers grow frames
constexpr unsigned kMaxThreads = 1024;
constexpr std::size_t kMaxSharedBytes = 227u << 10;  // sm_90's opt-in limit per block

namespace ctx = boost::context;

/// Hands out one preallocated stack per fiber of the block (reused block after block).
struct PooledStack {
  char* base;
  ctx::stack_context allocate() {
    ctx::stack_context sc;
    sc.size = kStackBytes;
    sc.sp = base + kStackBytes;
    return sc;
  }
  void deallocate(ctx::stack_context&) noexcept {}
};

/// A barrier among `active` threads; `gen` counts its openings.
struct Barrier {
  unsigned active{0}, arrived{0};
  unsigned long gen{0};
  unsigned opened_with{0};  // threads that had arrived when it last opened
  bool arrive() {  // true when this arrival opened it
    if (++arrived < active) return false;
    open();
    return true;
  }
  bool leave() {  // a thread returned: opens the barrier if everyone left is waiting
    --active;
    if (arrived > 0 && arrived == active) {
      open();
      return true;
    }
    return false;
  }
  void open() {
    opened_with = arrived;
    arrived = 0;
    ++gen;
  }
};

struct Warp {
  Barrier bar;  // among its lanes: 32, but for a partial last warp
  alignas(16) unsigned char slot[32][16];
};

struct Fiber {
  char* stack{nullptr};        // the bottom (lowest address) of its stack
  void* fake{nullptr};         // AddressSanitizer's fake stack while switched out
  uint3 tid{};
  unsigned linear{0};
  bool done{false};
  ctx::fiber self;    // the fiber to resume
  ctx::fiber caller;  // the scheduler, to yield to
};

struct Block {
  const char* kernel{""};
  uint3 idx{};
  dim3 dim, grid;
  Barrier bar;
  std::vector<Warp> warps;
  std::vector<std::unique_ptr<Fiber>> fibers;
  Fiber* current{nullptr};
  unsigned long progress{0};  // barrier openings and returns
  std::vector<unsigned char> shared;
  std::exception_ptr error;  // thrown by a thread: the launch stops and rethrows it
  bool aborting{false};      // waiting fibers throw Abort when resumed
};

Block* g_block = nullptr;  // the launch running on this process (the emulator runs one at a time)

/// Thrown in the fibers still waiting when a launch fails, so that each unwinds its own
/// stack and returns (a suspended fiber is never destroyed: that would switch stacks
/// behind AddressSanitizer's back).
struct Abort {};

// AddressSanitizer must be told of every stack switch (its fiber annotations).
#ifdef PPSIM_EMU_ASAN
const void* g_sched_bottom = nullptr;
std::size_t g_sched_size = 0;
void to_fiber(void** fake, const char* bottom) { __sanitizer_start_switch_fiber(fake, bottom, kStackBytes); }
void to_scheduler(void** fake) { __sanitizer_start_switch_fiber(fake, g_sched_bottom, g_sched_size); }
void arrived_in_fiber(void* fake) { __sanitizer_finish_switch_fiber(fake, &g_sched_bottom, &g_sched_size); }
void back_in_scheduler(void* fake) { __sanitizer_finish_switch_fiber(fake, nullptr, nullptr); }
#else
void to_fiber(void**, const char*) {}
void to_scheduler(void**) {}
void arrived_in_fiber(void*) {}
void back_in_scheduler(void*) {}
#endif

/// An error of the running block, naming its kernel and block.
std::logic_error block_error(const std::string& what) {
  return std::logic_error("cuda emulator: kernel " + std::string(g_block->kernel) + " block (" +
                          std::to_string(g_block->idx.x) + "," + std::to_string(g_block->idx.y) + "," +
                          std::to_string(g_block->idx.z) + "): " + what);
}

Block& block() {
  if (!g_block || !g_block->current) {
    std::fputs("cuda emulator: a CUDA builtin used outside a kernel\n", stderr);
    std::abort();
  }
  return *g_block;
}

void yield() {
  Fiber* f = block().current;
  to_scheduler(&f->fake);
  f->caller = std::move(f->caller).resume();
  arrived_in_fiber(f->fake);
  if (block().aborting) throw Abort{};
}

void wait(Barrier& b) {
  Block& blk = block();
  const unsigned long gen = b.gen;
  if (b.arrive()) {
    ++blk.progress;
    return;
  }
  while (b.gen == gen) yield();
}

}  // namespace

const uint3& thread_index() { return block().current->tid; }
const uint3& block_index() { return block().idx; }
const dim3& block_dim() { return block().dim; }
const dim3& grid_dim() { return block().grid; }
unsigned lane_id() { return block().current->linear % 32; }
void* dynamic_shared() { return block().shared.data(); }

void sync_block() { wait(block().bar); }

void warp_exchange(const void* value, void* out, std::size_t bytes, int src) {
  Block& blk = block();
  const unsigned lin = blk.current->linear;
  Warp& w = blk.warps[lin / 32];
  if (bytes > sizeof w.slot[0]) throw block_error("a shuffle of more than 16 bytes");
  std::memcpy(w.slot[lin % 32], value, bytes);
  wait(w.bar);
  if (w.bar.opened_with != 32)  // a partial warp, or lanes that returned before or while this one waited
    throw block_error("a whole-warp shuffle in a warp of which only " + std::to_string(w.bar.opened_with) +
                      " lanes run");
  std::memcpy(out, w.slot[src], bytes);
  wait(w.bar);
}

void run(const char* kernel, dim3 grid, dim3 block_shape, std::size_t shared_bytes, const std::function<void()>& body) {
  if (g_block) throw std::logic_error("cuda emulator: a launch inside a launch");
  auto refuse = [&](const std::string& what) {
    throw std::logic_error(std::string("cuda emulator: kernel ") + kernel + ": " + what);
  };
  const unsigned threads = block_shape.x * block_shape.y * block_shape.z;
  if (threads == 0 || threads > kMaxThreads || block_shape.z > 64)
    refuse("block of " + std::to_string(threads) + " threads (CUDA allows 1..1024, z <= 64)");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
    refuse("grid (" + std::to_string(grid.x) + "," + std::to_string(grid.y) + "," + std::to_string(grid.z) +
           ") outside CUDA's limits (x >= 1, y and z in 1..65535)");
  if (shared_bytes > kMaxSharedBytes)
    refuse(std::to_string(shared_bytes) + " B of dynamic shared memory (sm_90 allows " +
           std::to_string(kMaxSharedBytes) + ")");

  // Fiber stacks, kept between launches and never zeroed: untouched pages cost nothing.
  static std::unique_ptr<char[]> stacks;
  static std::size_t stacks_for = 0;
  if (stacks_for < threads) {
    stacks.reset(new char[static_cast<std::size_t>(threads) * kStackBytes]);
    stacks_for = threads;
  }
  // PPSIM_CUDA_EMU_ORDER=reverse resumes the threads last to first: a result that
  // depends on the order threads run between two barriers (a race) changes with it.
  const bool reverse = ppsim::cal::env_choice("PPSIM_CUDA_EMU_ORDER", {"forward", "reverse"}) == "reverse";
  Block blk;
  blk.kernel = kernel;
  blk.dim = block_shape;
  blk.grid = grid;
  blk.warps.resize((threads + 31) / 32);
  blk.shared.resize(std::max<std::size_t>(shared_bytes, 16));
  struct Reset {
    ~Reset() { g_block = nullptr; }
  } reset;
  g_block = &blk;

  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blk.idx = make_uint3(bx, by, bz);
        blk.bar = Barrier{threads};
        for (unsigned w = 0; w < blk.warps.size(); ++w) blk.warps[w].bar = Barrier{std::min(32u, threads - 32 * w)};
        std::fill(blk.shared.begin(), blk.shared.end(), static_cast<unsigned char>(0xFF));  // NaN floats
        blk.fibers.clear();
        for (unsigned t = 0; t < threads; ++t) {
          auto f = std::make_unique<Fiber>();
          f->linear = t;
          f->tid = make_uint3(t % block_shape.x, (t / block_shape.x) % block_shape.y, t / (block_shape.x * block_shape.y));
          f->stack = stacks.get() + static_cast<std::size_t>(t) * kStackBytes;
          Fiber* raw = f.get();
          f->self = ctx::fiber(std::allocator_arg, PooledStack{f->stack},
                               [raw, &body, &blk](ctx::fiber&& caller) {
                                 arrived_in_fiber(nullptr);
                                 raw->caller = std::move(caller);
                                 try {
                                   body();
                                 } catch (const Abort&) {
                                 } catch (...) {
                                   if (!blk.error) blk.error = std::current_exception();
                                 }
                                 raw->done = true;
                                 ++blk.progress;
                                 if (blk.bar.leave()) ++blk.progress;
                                 if (blk.warps[raw->linear / 32].bar.leave()) ++blk.progress;
                                 to_scheduler(nullptr);  // this stack is done
                                 return std::move(raw->caller);
                               });
          blk.fibers.push_back(std::move(f));
        }
        unsigned left = threads;
        auto resume = [&](Fiber& f) {
          blk.current = &f;
          void* fake = nullptr;
          to_fiber(&fake, f.stack);
          f.self = std::move(f.self).resume();
          back_in_scheduler(fake);
          blk.current = nullptr;
          if (f.done) --left;
        };
        // Lets every fiber still waiting unwind and return, then reports `error`.
        auto abort_block = [&](std::exception_ptr error) {
          blk.aborting = true;
          for (auto& f : blk.fibers)
            if (!f->done) resume(*f);
          blk.aborting = false;
          std::rethrow_exception(error);
        };
        while (left > 0) {
          const unsigned long before = blk.progress;
          for (unsigned i = 0; i < threads; ++i) {
            Fiber& f = *blk.fibers[reverse ? threads - 1 - i : i];
            if (f.done) continue;
            resume(f);
            if (blk.error) abort_block(blk.error);
          }
          if (left > 0 && blk.progress == before)
            abort_block(std::make_exception_ptr(block_error(
                "deadlock: " + std::to_string(left) +
                " threads wait at barriers that cannot open (a __syncthreads or shuffle not reached by every thread)")));
        }
      }
}

}  // namespace ppsim::emu
