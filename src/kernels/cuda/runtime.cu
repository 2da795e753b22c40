// Device selection, the stream and cuBLAS handle, memory, the Device::kCuda allocator, timers
// and graphs.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"
#include "tensor/device.h"

namespace qb::cuda {

namespace detail {

void Fail(const char* what, const char* detail, const char* file, int line) {
  std::fprintf(stderr, "CUDA backend failure at %s:%d: %s: %s\n", file, line, what, detail);
  std::fflush(stderr);
  std::abort();
}

namespace {

struct Backend {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  void* cublas_workspace = nullptr;
};

Backend* g_backend = nullptr;
std::once_flag g_init;

// Tensor::Empty(..., Device::kCuda) comes here. Memory is zero-filled, as the allocator
// contract requires (the memset is waited for, so the tensor is ready when returned).
class CudaAllocator final : public DeviceAllocator {
 public:
  void* Allocate(size_t bytes) override {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes == 0 ? 256 : bytes) != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky-free out-of-memory error
      return nullptr;
    }
    QB_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, Stream()));
    QB_CUDA_CHECK(cudaStreamSynchronize(Stream()));
    return p;
  }
  void Free(void* p) override { QB_CUDA_CHECK(cudaFree(p)); }
};

CudaAllocator g_allocator;

// cuBLAS needs a fixed workspace to be capturable into CUDA graphs (it must not allocate
// during capture); 32 MiB is what NVIDIA recommends for Hopper.
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;

}  // namespace

cudaStream_t Stream() {
  QB_CUDA_REQUIRE(g_backend != nullptr, "qb::cuda::Initialize() was not called");
  return g_backend->stream;
}

cublasHandle_t Cublas() {
  QB_CUDA_REQUIRE(g_backend != nullptr, "qb::cuda::Initialize() was not called");
  return g_backend->cublas;
}

}  // namespace detail

using detail::Stream;

int DeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

std::string NoDeviceReason() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  (void)cudaGetLastError();
  if (err != cudaSuccess) return cudaGetErrorString(err);
  return n == 0 ? "no CUDA device" : "";
}

void Initialize() {
  std::call_once(detail::g_init, [] {
    QB_CUDA_REQUIRE(DeviceCount() > 0, "no CUDA device");
    QB_CUDA_CHECK(cudaSetDevice(0));
    auto* b = new detail::Backend();  // lives for the process (kernels may run until exit)
    QB_CUDA_CHECK(cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking));
    QB_CUBLAS_CHECK(cublasCreate(&b->cublas));
    QB_CUBLAS_CHECK(cublasSetStream(b->cublas, b->stream));
    QB_CUDA_CHECK(cudaMalloc(&b->cublas_workspace, detail::kCublasWorkspaceBytes));
    QB_CUBLAS_CHECK(cublasSetWorkspace(b->cublas, b->cublas_workspace, detail::kCublasWorkspaceBytes));
    detail::g_backend = b;
    RegisterAllocator(Device::kCuda, &detail::g_allocator);
  });
}

std::string DeviceDescription() {
  int dev = 0;
  QB_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  QB_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  int driver = 0, runtime = 0;
  QB_CUDA_CHECK(cudaDriverGetVersion(&driver));
  QB_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %d SMs, %.1f GiB, driver %d.%d, runtime %d.%d)", p.name, p.major,
                p.minor, p.multiProcessorCount, static_cast<double>(p.totalGlobalMem) / (1u << 30), driver / 1000,
                driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
  return buf;
}

MemoryInfo GetMemoryInfo() {
  MemoryInfo m;
  QB_CUDA_CHECK(cudaMemGetInfo(&m.free_bytes, &m.total_bytes));
  return m;
}

void* Malloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes == 0 ? 256 : bytes);
  if (err != cudaSuccess) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "cudaMalloc of %zu bytes: %s", bytes, cudaGetErrorString(err));
    detail::Fail("Malloc", msg, __FILE__, __LINE__);
  }
  return p;
}

void Free(void* p) {
  if (p != nullptr) QB_CUDA_CHECK(cudaFree(p));
}

void* MallocHost(size_t bytes) {
  void* p = nullptr;
  QB_CUDA_CHECK(cudaMallocHost(&p, bytes == 0 ? 64 : bytes));
  return p;
}

void FreeHost(void* p) {
  if (p != nullptr) QB_CUDA_CHECK(cudaFreeHost(p));
}

void CopyToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  QB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, Stream()));
  QB_CUDA_CHECK(cudaStreamSynchronize(Stream()));
}

void CopyToDeviceAsync(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  QB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, Stream()));
}

void CopyToHost(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  QB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, Stream()));
  QB_CUDA_CHECK(cudaStreamSynchronize(Stream()));
}

void CopyDeviceToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  QB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, Stream()));
}

void MemsetAsync(void* p, int byte, size_t bytes) {
  if (bytes == 0) return;
  QB_CUDA_CHECK(cudaMemsetAsync(p, byte, bytes, Stream()));
}

void Synchronize() { QB_CUDA_CHECK(cudaStreamSynchronize(Stream())); }

EventTimer::EventTimer() {
  cudaEvent_t a = nullptr, b = nullptr;
  QB_CUDA_CHECK(cudaEventCreate(&a));
  QB_CUDA_CHECK(cudaEventCreate(&b));
  start_ = a;
  stop_ = b;
}

EventTimer::~EventTimer() {
  QB_CUDA_CHECK(cudaEventDestroy(static_cast<cudaEvent_t>(start_)));
  QB_CUDA_CHECK(cudaEventDestroy(static_cast<cudaEvent_t>(stop_)));
}

void EventTimer::Start() { QB_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(start_), Stream())); }

float EventTimer::StopMs() {
  QB_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(stop_), Stream()));
  QB_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)));
  float ms = 0.f;
  QB_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start_), static_cast<cudaEvent_t>(stop_)));
  return ms;
}

Graph::~Graph() {
  if (exec_ != nullptr) QB_CUDA_CHECK(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_)));
  if (graph_ != nullptr) QB_CUDA_CHECK(cudaGraphDestroy(static_cast<cudaGraph_t>(graph_)));
}

void Graph::BeginCapture() {
  QB_CUDA_REQUIRE(graph_ == nullptr, "graph captured twice");
  // Relaxed: other threads' harmless CUDA calls (e.g. a cudaMalloc elsewhere) do not break it.
  QB_CUDA_CHECK(cudaStreamBeginCapture(Stream(), cudaStreamCaptureModeThreadLocal));
}

void Graph::EndCapture() {
  cudaGraph_t g = nullptr;
  QB_CUDA_CHECK(cudaStreamEndCapture(Stream(), &g));
  graph_ = g;
  cudaGraphExec_t e = nullptr;
  QB_CUDA_CHECK(cudaGraphInstantiate(&e, g, 0));
  exec_ = e;
}

void Graph::Launch() {
  QB_CUDA_REQUIRE(exec_ != nullptr, "graph launched before capture");
  QB_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), Stream()));
}

EventList::~EventList() {
  for (void* e : events_) QB_CUDA_CHECK(cudaEventDestroy(static_cast<cudaEvent_t>(e)));
}

void EventList::Record() {
  if (used_ == events_.size()) {
    cudaEvent_t e = nullptr;
    QB_CUDA_CHECK(cudaEventCreate(&e));
    events_.push_back(e);
  }
  QB_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[used_]), Stream()));
  ++used_;
}

void EventList::Begin() {
  used_ = 0;
  labels_.clear();
  Record();
}

void EventList::Mark(const char* label) {
  QB_CUDA_REQUIRE(used_ > 0, "EventList::Mark before Begin");
  labels_.push_back(label);
  Record();
}

void EventList::Finish() {
  if (used_ > 0) QB_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(events_[used_ - 1])));
}

std::vector<std::pair<const char*, float>> EventList::Intervals() const {
  std::vector<std::pair<const char*, float>> out;
  for (size_t i = 1; i < used_; ++i) {
    float ms = 0.f;
    QB_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(events_[i - 1]),
                                       static_cast<cudaEvent_t>(events_[i])));
    out.emplace_back(labels_[i - 1], ms);
  }
  return out;
}

namespace {

__global__ void SpinKernel(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

}  // namespace

void SpinWait(int64_t us) {
  int dev = 0, khz = 0;
  QB_CUDA_CHECK(cudaGetDevice(&dev));
  QB_CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev));
  // (launched plainly: the kernels queued behind it must not start early)
  SpinKernel<<<1, 1, 0, Stream()>>>(static_cast<long long>(us) * (khz > 0 ? khz : 2000000) / 1000);
  QB_CUDA_CHECK_LAUNCH();
}

namespace {

bool InitialProgrammaticLaunch() {
  const char* e = std::getenv("QB_CUDA_PDL");
  return e != nullptr && e[0] == '1';
}
std::atomic<bool> g_programmatic_launch{InitialProgrammaticLaunch()};

bool DeviceSupportsProgrammaticLaunch() {
  static const bool supported = [] {
    int dev = 0, major = 0;
    QB_CUDA_CHECK(cudaGetDevice(&dev));
    QB_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    return major >= 9;
  }();
  return supported;
}

}  // namespace

void SetProgrammaticLaunch(bool on) { g_programmatic_launch.store(on); }
bool ProgrammaticLaunch() { return g_programmatic_launch.load(); }

namespace detail {
bool ProgrammaticLaunchActive() { return g_programmatic_launch.load() && DeviceSupportsProgrammaticLaunch(); }
}  // namespace detail

int SmCount() {
  static const int count = [] {
    int dev = 0, n = 0;
    QB_CUDA_CHECK(cudaGetDevice(&dev));
    QB_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    return n > 0 ? n : 1;
  }();
  return count;
}

const char* WeightFormatName(WeightFormat f) {
  switch (f) {
    case WeightFormat::kBF16: return "bf16";
    case WeightFormat::kF16: return "f16";
    case WeightFormat::kInt4: return "int4";
    case WeightFormat::kInt4Mma: return "int4-mma";
  }
  return "?";
}

int64_t DeviceMatrix::bytes() const {
  const int64_t scales = rows * (cols / (group_size > 0 ? group_size : 1)) * 4;
  if (format == WeightFormat::kInt4) return rows * cols / 2 + scales;
  if (format == WeightFormat::kInt4Mma) return Int4MmaCodeBytes(rows, cols) + scales;
  return rows * cols * 2;
}

}  // namespace qb::cuda
