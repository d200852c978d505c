// The out-of-line parts of the kernel ABI (Kernel.h): element counts and attribute lookup.
//
// Attribute getters are lenient about the numeric kind (an Int read as a float, a Bool
// read as an int) so that a plan writer need not distinguish `1` from `1.0`; whether an
// attribute is present and of a usable kind is each kernel's `prepare` to check.
#include "runtime/kernels/Kernel.h"

namespace apc::kernels {

int64_t TensorView::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

const Attribute *Attributes::find(std::string_view name) const {
  for (const Attribute &a : attrs_)
    if (a.name == name)
      return &a;
  return nullptr;
}

int64_t Attributes::getInt(std::string_view name, int64_t otherwise) const {
  const Attribute *a = find(name);
  if (!a)
    return otherwise;
  switch (a->kind) {
  case Attribute::Kind::Int: return a->i;
  case Attribute::Kind::Bool: return a->b ? 1 : 0;
  case Attribute::Kind::Float: return int64_t(a->f);
  default: return otherwise;
  }
}

double Attributes::getFloat(std::string_view name, double otherwise) const {
  const Attribute *a = find(name);
  if (!a)
    return otherwise;
  switch (a->kind) {
  case Attribute::Kind::Float: return a->f;
  case Attribute::Kind::Int: return double(a->i);
  default: return otherwise;
  }
}

bool Attributes::getBool(std::string_view name, bool otherwise) const {
  const Attribute *a = find(name);
  if (!a)
    return otherwise;
  switch (a->kind) {
  case Attribute::Kind::Bool: return a->b;
  case Attribute::Kind::Int: return a->i != 0;
  default: return otherwise;
  }
}

std::string Attributes::getString(std::string_view name, const std::string &otherwise) const {
  const Attribute *a = find(name);
  if (!a || a->kind != Attribute::Kind::String)
    return otherwise;
  return a->s;
}

std::vector<int64_t> Attributes::getInts(std::string_view name) const {
  const Attribute *a = find(name);
  if (!a || a->kind != Attribute::Kind::Ints)
    return {};
  return a->ints;
}

} // namespace apc::kernels
