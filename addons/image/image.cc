// outpost_image: decode + resize + blob for /predict, off the JS thread (docs/performance.md,
// "Round 6: native pre-processing").
//
// One asynchronous call, blob(src, spec, out): a JPEG/PNG (cv::imdecode, at libjpeg's 1/k scale
// for a reduced decode) or a raw frame, then exactly what cv2.dnn.blobFromImage does to it
// (cv::resize INTER_LINEAR, with or without crop) or the ultralytics letterbox, then mean,
// scalefactor, channel order and the NCHW float32 layout, written into the caller's `out`.
// OpenCV's own imgcodecs and imgproc, so the pixels and the resize are cv2's by construction;
// only the last step (8-bit -> float, one table lookup per element) is ours, and it computes
// (level - mean[k]) * scalefactor in double as blobFromImage's two Mat operations do for the
// integer means models use (the comparison in test/integration/runtime-native-preprocess.test.ts).
//
// TypeScript validates everything first (agent/runtime/native-preprocess.ts): the header's size
// against the pixel limit before any allocation, raw frames' byte length, the network size. The
// checks here repeat the ones whose failure would be a wild write; a failure is a coded rejection.
//
// Buffers: the decoded and resized images live in thread_local Mats, so a pool thread reuses
// their memory from one call to the next (cv::Mat::create keeps a buffer of the same size). One
// larger than kKeepBytes (4 MiB: a 1280x720 frame is kept, a 1080p one is not) is released after
// the call, so at most 4 threads x 2 x 4 MiB stay resident between requests, never a huge image
// four times over. The output is the caller's (pooled in TypeScript).
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstring>

#include "outpost_addon.h"

namespace {

constexpr size_t kKeepBytes = 4u << 20;
constexpr int kMaxNetSide = 16384;
constexpr int kLetterboxGray = 114;

struct Spec {
  bool raw = false;
  // Encoded: the libjpeg scale denominator, and the EXIF orientation to apply after the cut
  // (0: let imdecode apply the file's own, as cv2.imread does).
  int shrink = 1;
  int orientation = 0;
  // Raw frames.
  int width = 0, height = 0, channels = 3;
  bool rgb = false;
  double maxPixels = 0;
  // blobFromImage's parameters.
  int netW = 0, netH = 0;
  double mean[3] = {0, 0, 0};
  double scale = 1;
  bool swaprb = false, crop = false, letterbox = false;
};

double Num(Napi::Object o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}
// An integer field within [lo, hi] (a NaN, a fraction or an out-of-range double is refused
// before any cast: casting one to int is undefined behaviour).
int Int(Napi::Env env, Napi::Object o, const char* key, int fallback, int lo, int hi) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) return fallback;
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != std::floor(d))
    outpost::ThrowError(env, "RUNTIME_IMAGE_INVALID", std::string("spec.") + key + " is out of range");
  return static_cast<int>(d);
}
bool Flag(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() && v.As<Napi::Boolean>().Value();
}

[[noreturn]] void Invalid(Napi::Env env, const std::string& message) {
  outpost::ThrowError(env, "RUNTIME_IMAGE_INVALID", message);
}

// cv::utils ApplyExifOrientation, for a reduced decode cut before it is turned (as libvips does).
void Orient(cv::Mat& img, int orientation) {
  switch (orientation) {
    case 2: cv::flip(img, img, 1); break;
    case 3: cv::flip(img, img, -1); break;
    case 4: cv::flip(img, img, 0); break;
    case 5: cv::transpose(img, img); break;
    case 6: cv::transpose(img, img); cv::flip(img, img, 1); break;
    case 7: cv::transpose(img, img); cv::flip(img, img, -1); break;
    case 8: cv::transpose(img, img); cv::flip(img, img, 0); break;
    default: break;
  }
}

void Trim(cv::Mat& m) {
  if (m.total() * m.elemSize() > kKeepBytes) m.release();
}

class BlobWorker : public outpost::PromiseWorker {
 public:
  BlobWorker(Napi::Env env, Napi::Uint8Array src, const Spec& spec, Napi::Float32Array out)
      : PromiseWorker(env), spec_(spec) {
    src_ = src.Data();
    srcLen_ = src.ByteLength();
    out_ = out.Data();
    outLen_ = out.ElementLength();
    keepSrc_ = Napi::Persistent(src.ArrayBuffer());
    keepOut_ = Napi::Persistent(out.ArrayBuffer());
  }

 protected:
  void Run() override {
    thread_local cv::Mat decoded, resized;
    // On every exit, a failed decode included.
    struct TrimAtExit {
      ~TrimAtExit() {
        Trim(decoded);
        Trim(resized);
      }
    } trim;
    cv::Mat image = spec_.raw ? RawImage() : Decode(decoded);
    width_ = image.cols;
    height_ = image.rows;
    Blob(image, resized);
  }

  Napi::Value Resolve(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("width", width_);
    o.Set("height", height_);
    return o;
  }

 private:
  cv::Mat RawImage() {
    // A view of the caller's bytes: resize reads them, nothing writes them.
    return cv::Mat(spec_.height, spec_.width, CV_8UC(spec_.channels), const_cast<uint8_t*>(src_));
  }

  cv::Mat Decode(cv::Mat& decoded) {
    const cv::Mat buf(1, static_cast<int>(srcLen_), CV_8U, const_cast<uint8_t*>(src_));
    int flags = spec_.shrink == 2   ? cv::IMREAD_REDUCED_COLOR_2
                : spec_.shrink == 4 ? cv::IMREAD_REDUCED_COLOR_4
                : spec_.shrink == 8 ? cv::IMREAD_REDUCED_COLOR_8
                                    : cv::IMREAD_COLOR;
    if (spec_.orientation > 0) flags |= cv::IMREAD_IGNORE_ORIENTATION;
    try {
      cv::imdecode(buf, flags, &decoded);
    } catch (const cv::Exception& e) {
      // A decoder's own refusal: the caller hands the file to sharp, which says why.
      throw outpost::AddonError("RUNTIME_IMAGE_INVALID", std::string("OpenCV could not decode the image: ") + e.what());
    }
    if (decoded.empty() || decoded.type() != CV_8UC3)
      throw outpost::AddonError("RUNTIME_IMAGE_INVALID", "OpenCV could not decode the image");
    if (static_cast<double>(decoded.total()) > spec_.maxPixels * 1.0)
      throw outpost::AddonError("RUNTIME_IMAGE_INVALID", "the decoded image exceeds the pixel limit");
    cv::Mat image = decoded;
    if (spec_.shrink > 1) {
      // libjpeg keeps ceil(cols/k) (the last column from a partial block); libvips, and so the
      // sharp fallback, floor(cols/k). The cut keeps both paths' blobs and geometry the same.
      const int k = spec_.shrink;
      const int cols = decoded.cols, rows = decoded.rows;
      // The stored size is what libjpeg scaled; a partial block adds at most one column/row.
      const int fullCols = static_cast<int>(spec_.width), fullRows = static_cast<int>(spec_.height);
      const int keepCols = fullCols > 0 ? std::min(cols, fullCols / k) : cols;
      const int keepRows = fullRows > 0 ? std::min(rows, fullRows / k) : rows;
      if (keepCols <= 0 || keepRows <= 0)
        throw outpost::AddonError("RUNTIME_IMAGE_INVALID", "the reduced decode is empty");
      image = decoded(cv::Rect(0, 0, keepCols, keepRows));
      if (spec_.orientation > 1) {
        cv::Mat turned;
        image.copyTo(turned);
        Orient(turned, spec_.orientation);
        image = turned;
      }
    }
    return image;
  }

  // blobFromImage(image, scalefactor, size, mean, swapRB, crop), or the letterbox around the
  // stretch resize, written as NCHW float32.
  void Blob(const cv::Mat& image, cv::Mat& resized) {
    const int w = spec_.netW, h = spec_.netH;
    if (outLen_ != static_cast<size_t>(3) * w * h)
      throw outpost::AddonError("RUNTIME_INPUT_INVALID", "the output array does not hold 3 x width x height floats");
    int innerW = w, innerH = h, left = 0, top = 0;
    cv::Mat r = image;
    if (spec_.letterbox) {
      const double f = std::min(static_cast<double>(w) / image.cols, static_cast<double>(h) / image.rows);
      innerW = std::max(1, std::min(w, static_cast<int>(std::nearbyint(image.cols * f))));
      innerH = std::max(1, std::min(h, static_cast<int>(std::nearbyint(image.rows * f))));
      left = static_cast<int>(std::floor((w - innerW) / 2.0 - 0.1 + 0.5));
      top = static_cast<int>(std::floor((h - innerH) / 2.0 - 0.1 + 0.5));
      if (image.cols != innerW || image.rows != innerH) {
        cv::resize(image, resized, cv::Size(innerW, innerH), 0, 0, cv::INTER_LINEAR);
        r = resized;
      }
    } else if (image.cols != w || image.rows != h) {
      if (spec_.crop) {
        const float f = std::max(w / static_cast<float>(image.cols), h / static_cast<float>(image.rows));
        cv::resize(image, resized, cv::Size(), f, f, cv::INTER_LINEAR);
        // As blobFromImage: Point(0.5 * (cols - w), ...) truncates to int.
        const cv::Rect window(cv::Point(static_cast<int>(0.5 * (resized.cols - w)), static_cast<int>(0.5 * (resized.rows - h))),
                              cv::Size(w, h));
        r = resized(window);
      } else {
        cv::resize(image, resized, cv::Size(w, h), 0, 0, cv::INTER_LINEAR);
        r = resized;
      }
    }
    // Blob channel k reads image channel src[k]: the image is BGR unless a raw frame says RGB.
    int src[3] = {0, 1, 2};
    if (spec_.raw && spec_.rgb) std::swap(src[0], src[2]);
    if (spec_.swaprb) std::swap(src[0], src[2]);
    float lut[3][256];
    for (int k = 0; k < 3; k++)
      for (int v = 0; v < 256; v++) {
        // In float, as blobFromImage's `image -= mean; image *= scalefactor` on a CV_32F Mat
        // computes it (each Scalar converted to float first).
        const float d = static_cast<float>(v) - static_cast<float>(spec_.mean[k]);
        lut[k][v] = d * static_cast<float>(spec_.scale);
      }
    const size_t plane = static_cast<size_t>(w) * h;
    if (spec_.letterbox && (innerW != w || innerH != h))
      for (int k = 0; k < 3; k++) std::fill(out_ + k * plane, out_ + (k + 1) * plane, lut[k][kLetterboxGray]);
    const int cn = r.channels();
    for (int y = 0; y < innerH; y++) {
      const uint8_t* row = r.ptr<uint8_t>(y);
      float* o0 = out_ + static_cast<size_t>(y + top) * w + left;
      float* o1 = o0 + plane;
      float* o2 = o1 + plane;
      for (int x = 0; x < innerW; x++, row += cn) {
        o0[x] = lut[0][row[src[0]]];
        o1[x] = lut[1][row[src[1]]];
        o2[x] = lut[2][row[src[2]]];
      }
    }
  }

  Spec spec_;
  const uint8_t* src_ = nullptr;
  size_t srcLen_ = 0;
  float* out_ = nullptr;
  size_t outLen_ = 0;
  Napi::Reference<Napi::ArrayBuffer> keepSrc_;
  Napi::Reference<Napi::ArrayBuffer> keepOut_;
  int width_ = 0, height_ = 0;
};

// blob(src: Uint8Array, spec, out: Float32Array) -> Promise<{width, height}> (the frame the blob
// was made from: the decoded image after the reduced-scale cut and the orientation).
Napi::Value BlobCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsObject() || !info[2].IsTypedArray())
    Invalid(env, "blob(src: Uint8Array, spec: object, out: Float32Array)");
  Napi::TypedArray srcArr = info[0].As<Napi::TypedArray>();
  Napi::TypedArray outArr = info[2].As<Napi::TypedArray>();
  if (srcArr.TypedArrayType() != napi_uint8_array || outArr.TypedArrayType() != napi_float32_array)
    Invalid(env, "blob(src: Uint8Array, spec: object, out: Float32Array)");
  Napi::Object o = info[1].As<Napi::Object>();
  Spec s;
  s.raw = Flag(o, "raw");
  constexpr int kMaxSide = 1 << 30;
  s.shrink = Int(env, o, "shrink", 1, 1, 8);
  s.orientation = Int(env, o, "orientation", 0, 0, 8);
  s.width = Int(env, o, "width", 0, 0, kMaxSide);
  s.height = Int(env, o, "height", 0, 0, kMaxSide);
  s.channels = Int(env, o, "channels", 3, 3, 4);
  s.rgb = Flag(o, "rgb");
  s.maxPixels = Num(o, "maxPixels", 0);
  s.netW = Int(env, o, "netWidth", 0, 1, kMaxNetSide);
  s.netH = Int(env, o, "netHeight", 0, 1, kMaxNetSide);
  Napi::Value mean = o.Get("mean");
  if (!mean.IsArray() || mean.As<Napi::Array>().Length() != 3) Invalid(env, "spec.mean must be 3 numbers");
  for (uint32_t k = 0; k < 3; k++) s.mean[k] = mean.As<Napi::Array>().Get(k).ToNumber().DoubleValue();
  s.scale = Num(o, "scalefactor", 1);
  s.swaprb = Flag(o, "swaprb");
  s.crop = Flag(o, "crop");
  s.letterbox = Flag(o, "letterbox");
  if (s.shrink != 1 && s.shrink != 2 && s.shrink != 4 && s.shrink != 8) Invalid(env, "spec.shrink must be 1, 2, 4 or 8");
  if (s.raw) {
    if (s.width <= 0 || s.height <= 0 || (s.channels != 3 && s.channels != 4) ||
        static_cast<double>(s.width) * s.height > s.maxPixels ||
        srcArr.ByteLength() != static_cast<size_t>(s.width) * s.height * s.channels)
      Invalid(env, "raw frame: width x height x channels must match the data and the pixel limit");
  } else if (srcArr.ByteLength() == 0 || srcArr.ByteLength() > 0x7fffffff) {
    Invalid(env, "the encoded image must be 1 byte to 2 GiB");
  }
  return outpost::Start(env, new BlobWorker(env, srcArr.As<Napi::Uint8Array>(), s, outArr.As<Napi::Float32Array>()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
  exports.Set("abi", Napi::Number::New(env, 1));
  exports.Set("blob", Napi::Function::New(env, BlobCall));
  exports.Set("opencv", Napi::String::New(env, CV_VERSION));
  return exports;
}

}  // namespace

NODE_API_MODULE(outpost_image, Init)
