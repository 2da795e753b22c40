// Empty: qb_test_pch (tests/CMakeLists.txt) needs a source file to own the test executables'
// precompiled headers.
