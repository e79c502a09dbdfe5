/** IPC names: the preload needs these and nothing else from the contract. */
export const METHODS = [
  'getInfo',
  'listModels',
  'addSources',
  'addSamples',
  'translate',
  'cancelJob',
  'listJobs',
  'gallerySearch',
  'galleryUpdate',
  'galleryDelete',
  'galleryExport',
  'sweep',
  'diagnosePaths',
  'trainDiscriminator',
  'trainScoreModel',
  'getSettings',
  'setSettings',
  'importModel',
  'deleteModel',
  'proposeManifest',
  'listStudies',
  'createStudy',
  'nextStudyItem',
  'judge',
  'undoJudgement',
  'studySummary',
  'studyExport',
] as const;

export const channelOf = (method: string) => `dg:${method}`;
export const EVENT_CHANNEL = 'dg:event';
