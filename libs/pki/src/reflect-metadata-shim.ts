/**
 * Minimal `Reflect` metadata polyfill, installed only when no other one is present.
 *
 * Why: `@peculiar/x509` 2.x pulls in `tsyringe`, which throws at require time unless
 * `Reflect.getMetadata` exists (upstream tells apps to `import 'reflect-metadata'`).
 * x509 only uses metadata while its own classes are decorated at load time and
 * never emits `design:*` type metadata, so the handful of functions below is
 * enough, and avoids adding a dependency just for this. If the real
 * `reflect-metadata` package is loaded first, it is used instead.
 *
 * @internal
 */

type MetadataKey = unknown;
type PropertyKeyOrUndefined = string | symbol | undefined;

interface ReflectMetadataApi {
  defineMetadata(key: MetadataKey, value: unknown, target: object, propertyKey?: string | symbol): void;
  hasOwnMetadata(key: MetadataKey, target: object, propertyKey?: string | symbol): boolean;
  hasMetadata(key: MetadataKey, target: object, propertyKey?: string | symbol): boolean;
  getOwnMetadata(key: MetadataKey, target: object, propertyKey?: string | symbol): unknown;
  getMetadata(key: MetadataKey, target: object, propertyKey?: string | symbol): unknown;
}

const reflect = Reflect as unknown as Partial<ReflectMetadataApi>;

if (typeof reflect.getMetadata !== 'function') {
  // WeakMap so decorated classes can still be garbage collected.
  const store = new WeakMap<object, Map<PropertyKeyOrUndefined, Map<MetadataKey, unknown>>>();

  const ownMap = (
    target: object,
    propertyKey: PropertyKeyOrUndefined,
    create: boolean,
  ): Map<MetadataKey, unknown> | undefined => {
    let byProperty = store.get(target);
    if (byProperty === undefined) {
      if (!create) return undefined;
      byProperty = new Map();
      store.set(target, byProperty);
    }
    let map = byProperty.get(propertyKey);
    if (map === undefined && create) {
      map = new Map();
      byProperty.set(propertyKey, map);
    }
    return map;
  };

  const api: ReflectMetadataApi = {
    defineMetadata(key, value, target, propertyKey) {
      ownMap(target, propertyKey, true)?.set(key, value);
    },
    hasOwnMetadata(key, target, propertyKey) {
      return ownMap(target, propertyKey, false)?.has(key) ?? false;
    },
    hasMetadata(key, target, propertyKey) {
      for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
        if (api.hasOwnMetadata(key, t, propertyKey)) return true;
      }
      return false;
    },
    getOwnMetadata(key, target, propertyKey) {
      return ownMap(target, propertyKey, false)?.get(key);
    },
    getMetadata(key, target, propertyKey) {
      // Like reflect-metadata, walk the prototype chain so subclasses see base metadata.
      for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
        const map = ownMap(t, propertyKey, false);
        if (map?.has(key)) return map.get(key);
      }
      return undefined;
    },
  };

  for (const [name, fn] of Object.entries(api)) {
    Object.defineProperty(Reflect, name, {
      value: fn,
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
}

export {};
