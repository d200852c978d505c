# lit configuration: every *.mlir and *.test file under test/ (but unit/) is a test.
import os
import lit.formats

config.name = "APC"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.apc_binary_dir, "test")
config.excludes = ["unit", "e2e", "Inputs", "CMakeLists.txt", "lit.cfg.py"]

config.environment["PATH"] = os.pathsep.join(
    [config.apc_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", os.environ["PATH"])]
)
config.substitutions.append(("%python", config.python_executable))
# The test oracles' Python (pyarrow, torch), made by tools/setup.sh.
config.substitutions.append(("%venv_python", os.path.join(config.apc_source_dir, ".venv", "bin", "python")))
config.substitutions.append(("%apc_src", config.apc_source_dir))
config.substitutions.append(("%configs", os.path.join(config.apc_source_dir, "frontends", "llama3", "configs")))
