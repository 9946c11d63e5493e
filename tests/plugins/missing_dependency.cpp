// A plugin that needs libflatface_test_gone.so, which the loader cannot find: loading it fails.
extern "C" int flatface_test_gone();
extern "C" int flatface_test_uses_gone() {
  return flatface_test_gone() + 1;
}
