// Validation helpers shared by the CPU kernels' `prepare` functions.
//
// Design idea: every refusal is one line that names the kernel, the operand by its
// role in the ap op ("weight", "ids", ...) and prints the offending dtype and shape,
// mirroring the ap verifiers, so a malformed plan is diagnosed at load time.
#include "runtime/kernels/cpu/Common.h"

namespace apc::kernels::cpu {

bool isFloat(DType dtype) {
  return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16;
}
bool isId(DType dtype) { return dtype == DType::I32 || dtype == DType::I64; }

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string describe(const TensorView &view) {
  return std::string(dtypeName(view.dtype)) + shapeString(view.shape);
}

std::string positionString(const std::vector<int64_t> &shape, int64_t flat) {
  std::vector<int64_t> index(shape.size());
  for (int64_t i = int64_t(shape.size()) - 1; i >= 0; --i) {
    index[i] = shape[i] ? flat % shape[i] : 0;
    flat = shape[i] ? flat / shape[i] : 0;
  }
  return shapeString(index);
}

int64_t rowsOf(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i)
    n *= shape[i];
  return n;
}

Status Checker::arity(const std::vector<TensorView> &in, const std::vector<TensorView> &out,
                      size_t minInputs, size_t maxInputs, size_t outputs) const {
  if (in.size() < minInputs || in.size() > maxInputs) {
    std::string expected = minInputs == maxInputs
                               ? std::to_string(minInputs)
                               : maxInputs == size_t(-1)
                                     ? "at least " + std::to_string(minInputs)
                                     : std::to_string(minInputs) + " or " +
                                           std::to_string(maxInputs);
    return error("expects " + expected + " inputs, got " + std::to_string(in.size()));
  }
  if (out.size() != outputs)
    return error("expects " + std::to_string(outputs) + " outputs, got " +
                 std::to_string(out.size()));
  return Status::ok();
}

Status Checker::tensor(const char *role, const TensorView &v, Kind kind, int rank) const {
  bool ok = kind == Kind::Float ? isFloat(v.dtype)
            : kind == Kind::Id  ? isId(v.dtype)
                                : isFloat(v.dtype) || isId(v.dtype);
  if (!ok) {
    const char *expected = kind == Kind::Float ? "f32, bf16 or f16"
                           : kind == Kind::Id  ? "i32 or i64"
                                               : "f32, bf16, f16, i32 or i64";
    return error(std::string(role) + " must have element type " + expected + ", got " +
                 describe(v));
  }
  for (int64_t d : v.shape)
    if (d < 0)
      return error(std::string(role) + " has a negative dim: " + describe(v));
  if (rank == kRankAtLeast1 && v.shape.empty())
    return error(std::string(role) + " must have rank at least 1, got " + describe(v));
  if (rank >= 0 && int(v.shape.size()) != rank)
    return error(std::string(role) + " must have rank " + std::to_string(rank) + ", got " +
                 describe(v));
  return Status::ok();
}

Status Checker::dtype(const char *role, const TensorView &v, DType dtype) const {
  if (v.dtype != dtype)
    return error(std::string(role) + " must be " + dtypeName(dtype) + ", got " + describe(v));
  return Status::ok();
}

Status Checker::shape(const char *role, const TensorView &v,
                      const std::vector<int64_t> &shape) const {
  if (v.shape != shape)
    return error(std::string(role) + " must have shape " + shapeString(shape) + ", got " +
                 describe(v));
  return Status::ok();
}

Status Checker::sameType(const char *role, const TensorView &v, const char *likeRole,
                         const TensorView &like) const {
  if (v.dtype != like.dtype || v.shape != like.shape)
    return error(std::string(role) + " " + describe(v) + " must have the type of " + likeRole +
                 " " + describe(like));
  return Status::ok();
}

Status Checker::sameDtype(const char *roleA, const TensorView &a, const char *roleB,
                          const TensorView &b) const {
  if (a.dtype != b.dtype)
    return error(std::string(roleA) + " and " + roleB +
                 " must have the same element type, got " + describe(a) + " and " +
                 describe(b));
  return Status::ok();
}

Status Checker::floatAttr(const Attributes &attrs, const char *name, bool required) const {
  const Attribute *a = attrs.find(name);
  if (!a)
    return required ? error("missing attribute '" + std::string(name) + "'") : Status::ok();
  if (a->kind != Attribute::Kind::Float && a->kind != Attribute::Kind::Int)
    return error("attribute '" + std::string(name) + "' must be a number");
  return Status::ok();
}

Status Checker::intAttr(const Attributes &attrs, const char *name, bool required) const {
  const Attribute *a = attrs.find(name);
  if (!a)
    return required ? error("missing attribute '" + std::string(name) + "'") : Status::ok();
  if (a->kind != Attribute::Kind::Int)
    return error("attribute '" + std::string(name) + "' must be an integer");
  return Status::ok();
}

Status Checker::boolAttr(const Attributes &attrs, const char *name) const {
  const Attribute *a = attrs.find(name);
  if (a && a->kind != Attribute::Kind::Bool && a->kind != Attribute::Kind::Int)
    return error("attribute '" + std::string(name) + "' must be a bool");
  return Status::ok();
}

Status Checker::stringAttr(const Attributes &attrs, const char *name,
                           std::initializer_list<const char *> allowed) const {
  const Attribute *a = attrs.find(name);
  if (!a)
    return Status::ok();
  if (a->kind != Attribute::Kind::String)
    return error("attribute '" + std::string(name) + "' must be a string");
  std::string list;
  for (const char *option : allowed) {
    if (a->s == option)
      return Status::ok();
    list += (list.empty() ? "\"" : ", \"") + std::string(option) + "\"";
  }
  return error("attribute '" + std::string(name) + "' is \"" + a->s + "\", expected one of " +
               list);
}

Status Checker::intsAttr(const Attributes &attrs, const char *name) const {
  const Attribute *a = attrs.find(name);
  if (!a)
    return error("missing attribute '" + std::string(name) + "'");
  if (a->kind != Attribute::Kind::Ints)
    return error("attribute '" + std::string(name) + "' must be a list of integers");
  return Status::ok();
}

} // namespace apc::kernels::cpu
