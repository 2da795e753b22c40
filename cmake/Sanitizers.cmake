# -DQWENBOX_SANITIZE=ON: AddressSanitizer + UndefinedBehaviorSanitizer on everything built.
if(QWENBOX_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# Targets whose code is glue around header-only libraries (CLI11, cpp-httplib, nlohmann::json):
# under the sanitizers their translation units cost 30-60 s each to compile at -O1 and half that
# at -O0, while their run time in the tests is negligible. They are compiled at -O0 there
# (still fully instrumented); the kernels, model and engine keep the build's -O1.
function(qb_sanitize_without_optimizing)
  if(QWENBOX_SANITIZE)
    qb_compile_without_optimizing(${ARGN})
  endif()
endfunction()

# Test executables' own files: assertions and glue around the libraries under test, which keep
# the build's optimization. They are compiled at -O0 in every build (in Release, with the
# precompiled headers of cmake/CompileTime.cmake, 250 instead of 450 s of CPU to compile, and
# the tests run as fast); timed tests keep the build's flags.
function(qb_compile_without_optimizing)
  foreach(target ${ARGN})
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-O0>)
  endforeach()
endfunction()
