// `#ap.parallel`: the verifier of the plan's fields and the mesh it implies.
#include "dialects/ap/IR/ApAttrs.h"
#include "dialects/ap/IR/ApDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace apc::ap;

#include "dialects/ap/IR/ApEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/ap/IR/ApAttrs.cpp.inc"

void ApDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/ap/IR/ApAttrs.cpp.inc"
      >();
}

LogicalResult ParallelAttr::verify(function_ref<InFlightDiagnostic()> emitError, int64_t dp,
                                   int64_t tp, int64_t pp, int64_t cp, int64_t zero, bool sp,
                                   int64_t mb,
                                   int64_t vp, Recompute recompute, int64_t recomputeStages,
                                   ArrayRef<int64_t> stages) {
  for (auto [name, value] : {std::pair<const char *, int64_t>{"dp", dp}, {"tp", tp},
                             {"pp", pp}, {"cp", cp}, {"mb", mb}, {"vp", vp}})
    if (value < 1)
      return emitError() << "#ap.parallel: '" << name << "' must be at least 1, got " << value;
  if (zero < 0 || zero > 3)
    return emitError() << "#ap.parallel: 'zero' must be 0, 1, 2 or 3, got " << zero;
  if (sp && tp == 1)
    return emitError() << "#ap.parallel: 'sp' needs tp > 1";
  if (recomputeStages < 0 || (recomputeStages > 0 && (recompute == Recompute::None ||
                                                      recomputeStages >= pp)))
    return emitError() << "#ap.parallel: 'recomputeStages' must be 0 (every stage) or name "
                          "fewer stages than pp with a recompute mode, got "
                       << recomputeStages;
  if (vp > 1 && pp == 1)
    return emitError() << "#ap.parallel: 'vp' needs pp > 1";
  if (!stages.empty() && int64_t(stages.size()) != pp * vp)
    return emitError() << "#ap.parallel: 'stages' lists " << stages.size()
                       << " stages but pp x vp is " << pp * vp;
  for (int64_t layers : stages)
    if (layers < 1)
      return emitError() << "#ap.parallel: every stage needs at least one layer";
  return success();
}

int64_t ParallelAttr::getDevices() const { return getDp() * getTp() * getPp() * getCp(); }

SmallVector<std::pair<StringRef, int64_t>> ParallelAttr::meshAxes() const {
  SmallVector<std::pair<StringRef, int64_t>> axes{{"dp", getDp()}};
  if (getPp() > 1)
    axes.push_back({"pp", getPp()});
  if (getCp() > 1)
    axes.push_back({"cp", getCp()});
  if (getTp() > 1)
    axes.push_back({"tp", getTp()});
  return axes;
}
