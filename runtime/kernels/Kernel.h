// The kernel interface between the executor and a backend.
//
// A plan's instruction names a kernel ("gemm", "rms_norm", "adamw", ...), lists its
// input and output buffers and carries attributes. The executor resolves each name
// once at load time to a `KernelFn` of the backend and then calls it every step with
// typed views of the buffers. Kernels check nothing per call that the loader already
// checked (shapes, dtypes, attribute presence): `prepare` validates once and the hot
// path trusts it.
#pragma once

#include "runtime/support/DType.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace apc::kernels {

// Element types of buffers: the one DType (runtime/support/DType.h).
using apc::DType;
using apc::dtypeName;
using apc::dtypeSize;

// A view of one buffer: row-major, contiguous.
struct TensorView {
  void *data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int64_t numElements() const;
  template <typename T> T *as() const { return static_cast<T *>(data); }
};

// One attribute of an instruction (the op's attribute in the IR, same name).
struct Attribute {
  enum class Kind : uint8_t { Int, Float, Bool, String, Ints };
  std::string name;
  Kind kind = Kind::Int;
  int64_t i = 0;
  double f = 0.0;
  bool b = false;
  std::string s;
  std::vector<int64_t> ints;
};

class Attributes {
public:
  Attributes() = default;
  explicit Attributes(std::vector<Attribute> attrs) : attrs_(std::move(attrs)) {}
  const Attribute *find(std::string_view name) const;
  // Typed getters with a default for absent attributes.
  int64_t getInt(std::string_view name, int64_t otherwise = 0) const;
  double getFloat(std::string_view name, double otherwise = 0.0) const;
  bool getBool(std::string_view name, bool otherwise = false) const;
  std::string getString(std::string_view name, const std::string &otherwise = "") const;
  std::vector<int64_t> getInts(std::string_view name) const;
  bool has(std::string_view name) const { return find(name) != nullptr; }
  // Removes the attribute (absent: the op's default).
  void erase(std::string_view name) {
    for (size_t i = 0; i < attrs_.size(); ++i)
      if (attrs_[i].name == name) {
        attrs_.erase(attrs_.begin() + long(i));
        return;
      }
  }
  // Replaces the attribute of the same name, or adds it.
  void set(Attribute attr) {
    for (Attribute &a : attrs_)
      if (a.name == attr.name) {
        a = std::move(attr);
        return;
      }
    attrs_.push_back(std::move(attr));
  }
  const std::vector<Attribute> &all() const { return attrs_; }

private:
  std::vector<Attribute> attrs_;
};

// Per-call context: what the backend gives a kernel besides its operands.
struct KernelContext {
  int threads = 1;            // CPU: the threads it may use
  void *stream = nullptr;     // CUDA: the cudaStream_t to launch on (null: the default)
  void *workspace = nullptr;  // scratch of the backend's memory, for kernels that ask
  uint64_t workspaceBytes = 0; // (KernelInfo::workspace), reserved once at load
  void *blasLt = nullptr;     // CUDA: the cublasLtHandle_t (runtime/kernels/cuda/Libraries.h)
};

// Runs one instruction. Errors are data errors only (a token id out of range).
using KernelFn = Status (*)(const KernelContext &context, const std::vector<TensorView> &inputs,
                            const std::vector<TensorView> &outputs, const Attributes &attrs);

// Validates an instruction's operand types, shapes and attributes once, at load time.
using PrepareFn = Status (*)(const std::vector<TensorView> &inputs,
                             const std::vector<TensorView> &outputs, const Attributes &attrs);

// Bytes of scratch a kernel needs for these operands (KernelContext::workspace).
using WorkspaceFn = uint64_t (*)(const std::vector<TensorView> &inputs,
                                 const std::vector<TensorView> &outputs, const Attributes &attrs);

struct KernelInfo {
  const char *name;
  KernelFn run;
  PrepareFn prepare;
  WorkspaceFn workspace = nullptr; // null: none
};

} // namespace apc::kernels
