// A shared library that is not a flatface plugin: it exports a function but no manifest.
extern "C" int flatface_test_answer() {
  return 42;
}
