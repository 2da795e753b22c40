# Compile time. On the 2-core CI machine the Release (+ CUDA) and ASan builds took ~11 minutes
# each, most of it spent instantiating and compiling the same header-only code (CLI11,
# nlohmann::json, fmt, GoogleTest) again in every file of the command-line and test targets. Two remedies, each with an option to turn it off:
#  - unity builds (QWENBOX_UNITY): such a target's files are compiled together, in batches,
#    so the shared templates are instantiated once per batch (qb_cli: 300 s of CPU -> 60 s).
#    Files of one target must then not define the same names in anonymous namespaces.
#  - precompiled headers (QWENBOX_PCH) for the test executables: GoogleTest, JSON, fmt.
# -DQWENBOX_UNITY=OFF -DQWENBOX_PCH=OFF compiles every file alone, e.g. to check that each
# includes what it uses.
option(QWENBOX_UNITY "Compile the glue targets (CLI, load tester, resources, tests) as unity builds" ON)
option(QWENBOX_PCH "Precompile the tests' large third-party headers" ON)

# qb_unity_build(target [batch size]): the target's files compiled together, `batch` at a time
# (default 8; 0 = all in one).
function(qb_unity_build target)
  if(QWENBOX_UNITY)
    set(batch 8)
    if(ARGC GREATER 1)
      set(batch ${ARGV1})
    endif()
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE ${batch})
  endif()
endfunction()

# qb_precompile_headers(target header...): the target's C++ files start with these headers.
function(qb_precompile_headers target)
  if(QWENBOX_PCH)
    target_precompile_headers(${target} PRIVATE ${ARGN})
  endif()
endfunction()

# qb_reuse_precompiled_headers(target from): the target uses `from`'s precompiled headers (both
# must be compiled with the same options, or GCC ignores them: -Winvalid-pch says so).
function(qb_reuse_precompiled_headers target from)
  if(QWENBOX_PCH)
    target_precompile_headers(${target} REUSE_FROM ${from})
  endif()
endfunction()
